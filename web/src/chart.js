// The overview's chart: uPlot on a canvas, sized to its box (and resized
// with it), coloured from the page's CSS variables so that it follows the
// light and dark schemes. The numbers are also in a table next to it.
import uPlot from 'uplot';
import { useEffect, useRef, useState } from 'preact/hooks';
import { fmtDay, fmtHour, fmtNum } from './fmt.js';
import { html } from './ui.js';

export const SERIES = [
  { key: 'accepted', label: 'Accepted', color: '--c-accepted' },
  { key: 'delivered', label: 'Delivered', color: '--c-delivered' },
  { key: 'deferred', label: 'Deferred', color: '--c-deferred' },
  { key: 'bounced', label: 'Bounced', color: '--c-bounced' },
];

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function options(width, daily) {
  const axis = { stroke: css('--fg-muted'), grid: { stroke: css('--grid') }, ticks: { stroke: css('--grid') } };
  return {
    width,
    height: 240,
    padding: [8, 28, 0, 0], // room for the last time label
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true } },
    axes: [
      { ...axis, values: (u, ticks) => ticks.map((t) => (daily ? fmtDay(new Date(t * 1000)) : fmtHour(new Date(t * 1000)))) },
      { ...axis, values: (u, ticks) => ticks.map((t) => fmtNum(t)), size: 56 },
    ],
    series: [
      { value: (u, t) => (t === null ? '—' : (daily ? fmtDay : fmtHour)(new Date(t * 1000))) },
      ...SERIES.map((s) => ({
        label: s.label, stroke: css(s.color), width: 2, points: { show: true, size: 5 },
        value: (u, v) => (v === null ? '—' : fmtNum(v)),
      })),
    ],
  };
}

function useDark() {
  const [dark, setDark] = useState(() => matchMedia('(prefers-color-scheme: dark)').matches);
  useEffect(() => {
    const mq = matchMedia('(prefers-color-scheme: dark)');
    const on = () => setDark(mq.matches);
    mq.addEventListener('change', on);
    return () => mq.removeEventListener('change', on);
  }, []);
  return dark;
}

// xs: bucket starts (unix seconds); ys: {accepted: [...], ...}
export function Chart({ xs, ys, daily, label }) {
  const box = useRef(null);
  const dark = useDark();
  useEffect(() => {
    const el = box.current;
    const data = [xs, ...SERIES.map((s) => ys[s.key])];
    const plot = new uPlot(options(Math.max(200, el.clientWidth), daily), data, el);
    const canvas = plot.root.querySelector('canvas');
    if (canvas) {
      canvas.setAttribute('role', 'img');
      canvas.setAttribute('aria-label', label);
    }
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(200, el.clientWidth), height: 240 }));
    ro.observe(el);
    return () => { ro.disconnect(); plot.destroy(); };
  }, [xs, ys, daily, dark, label]);
  return html`<div class="chart" ref=${box}></div>`;
}
