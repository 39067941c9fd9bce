// Numbers, times and durations in the browser's locale (Intl).

const num = new Intl.NumberFormat();
const pct = new Intl.NumberFormat(undefined, { style: 'percent', maximumFractionDigits: 2 });
const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
const short = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const hourOnly = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayOnly = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

export const fmtNum = (n) => (n === null || n === undefined || Number.isNaN(n) ? '—' : num.format(n));
// A ratio (0.012) as "1.2 %"; "—" when there is nothing to divide.
export const fmtPct = (r) => (r === null || r === undefined || !Number.isFinite(r) ? '—' : pct.format(r));

export function toDate(t) {
  if (t === null || t === undefined || t === '') return null;
  const d = typeof t === 'number' ? new Date(t < 1e12 ? t * 1000 : t) : new Date(t);
  return Number.isNaN(d.getTime()) ? null : d;
}
export function fmtTime(t) {
  const d = toDate(t);
  return d ? dateTime.format(d) : '—';
}
export function fmtShort(t) {
  const d = toDate(t);
  return d ? short.format(d) : '—';
}
export const fmtHour = (d) => hourOnly.format(d);
export const fmtDay = (d) => dayOnly.format(d);

// Seconds as "3 minutes", "2 hours", "4 days" (the largest unit that fits).
const UNITS = [['day', 86400], ['hour', 3600], ['minute', 60], ['second', 1]];
const unitFmt = Object.fromEntries(UNITS.map(([u]) => [u,
  new Intl.NumberFormat(undefined, { style: 'unit', unit: u, unitDisplay: 'long', maximumFractionDigits: 0 })]));
export function fmtDuration(secs) {
  if (secs === null || secs === undefined || !Number.isFinite(secs)) return '—';
  for (const [u, s] of UNITS)
    if (secs >= s || u === 'second') return unitFmt[u].format(Math.floor(secs / s));
  return '—';
}

// The domain of an address ("" when it has none).
export const domainOf = (addr) => {
  const i = String(addr || '').lastIndexOf('@');
  return i < 0 ? '' : addr.slice(i + 1).toLowerCase();
};
