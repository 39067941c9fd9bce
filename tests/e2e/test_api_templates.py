"""/v1/templates against a real `posthorn serve`: create, get, list with
cursors, replace, delete, preview with variables and warnings; every error
(400 naming the field, with line and column for a syntax error; 401; 404;
409; 413); one account's key never sees or changes another's templates;
a change made behind the server's back (another node) is rendered within
a second; and curl as a client."""
import json
import sqlite3
import subprocess
import time

import pytest

from conftest import Server
from httpapi import request, two_accounts

MAX_BODY = 3 * 1024 * 1024  # [http] max_request_size of the module's server
PART_MAX = 1048576

WELCOME = {"name": "welcome", "subject": "Hi {{name}}", "text": "Hello {{name}}\n",
           "html": "<p>Hello {{name}}</p>"}


@pytest.fixture(scope="module")
def api(tmp_path_factory, cert):
    s = two_accounts(Server(tmp_path_factory.mktemp("tmpl"), cert,
                            extra="max_request_size = 3m"))
    yield s
    s.stop()


@pytest.fixture
def clean(api):
    """Deletes default's and bob's templates after the test."""
    yield api
    for key in (api.key, api.bob):
        for t in request(api, "GET", "/v1/templates?limit=1000", key=key).json()["templates"]:
            assert request(api, "DELETE", f"/v1/templates/{t['name']}", key=key).status == 200


def create(api, body, key=None):
    return request(api, "POST", "/v1/templates", key=key or api.key, body=body)


def field_error(r, field, words):
    assert r.status == 400, r
    e = r.error()
    assert e["code"] == "invalid_field", e
    assert e["field"] == field, e
    assert e["message"].startswith(field + ": ") and words in e["message"], e
    return e


# ---- create, get, list, replace, delete -----------------------------------------------------


def test_create_and_get(clean):
    api = clean
    r = create(api, WELCOME)
    assert r.status == 201, r
    assert r.headers["location"] == "/v1/templates/welcome"
    t = r.json()
    assert set(t) == {"name", "subject", "text", "html", "created_at", "updated_at"}
    assert {k: t[k] for k in WELCOME} == WELCOME
    assert t["created_at"] == t["updated_at"] and t["created_at"].endswith("Z")
    g = request(api, "GET", "/v1/templates/welcome", key=api.key)
    assert g.status == 200 and g.json() == t
    assert "event=template_created account=default" in api.log()
    r = create(api, {"name": "html-only", "subject": "", "html": "<b>{{x}}</b>"})
    assert r.status == 201 and r.json()["text"] is None
    r = create(api, {"name": "text-only", "subject": "s", "text": "", "html": None})
    assert r.status == 201 and r.json()["text"] == "" and r.json()["html"] is None


def test_a_name_taken_is_409(clean):
    api = clean
    assert create(api, WELCOME).status == 201
    r = create(api, dict(WELCOME, subject="other"))
    assert r.status == 409 and r.error()["code"] == "conflict"
    assert "welcome" in r.error()["message"]
    assert request(api, "GET", "/v1/templates/welcome", key=api.key).json()["subject"] == \
        WELCOME["subject"]


def test_list_with_cursors(clean):
    api = clean
    names = ["b", "a", "C", "c-2", "c"]
    for n in names:
        assert create(api, dict(WELCOME, name=n)).status == 201
    doc = request(api, "GET", "/v1/templates", key=api.key).json()
    assert [t["name"] for t in doc["templates"]] == ["C", "a", "b", "c", "c-2"]
    assert doc["next"] is None
    assert set(doc["templates"][0]) == {"name", "subject", "created_at", "updated_at"}
    seen, after = [], None
    while True:
        path = "/v1/templates?limit=2" + (f"&after={after}" if after else "")
        doc = request(api, "GET", path, key=api.key).json()
        seen += [t["name"] for t in doc["templates"]]
        assert len(doc["templates"]) <= 2
        after = doc["next"]
        if not after:
            break
    assert seen == ["C", "a", "b", "c", "c-2"]


def test_list_parameters_are_checked(clean):
    api = clean
    for query, param in (("limit=0", "limit"), ("limit=1001", "limit"), ("limit=x", "limit"),
                         ("after=%21%21", "after"), ("after=a", "after")):
        r = request(api, "GET", f"/v1/templates?{query}", key=api.key)
        assert r.status == 400, query
        e = r.error()
        assert e["code"] == "invalid_parameter" and e["parameter"] == param, e


def test_put_replaces_everything(clean):
    api = clean
    created = create(api, WELCOME).json()
    time.sleep(1.1)  # updated_at has seconds
    r = request(api, "PUT", "/v1/templates/welcome", key=api.key,
                body={"subject": "New {{x}}", "text": "only text"})
    assert r.status == 200, r
    t = r.json()
    assert t["subject"] == "New {{x}}" and t["text"] == "only text" and t["html"] is None
    assert t["created_at"] == created["created_at"] and t["updated_at"] > created["updated_at"]
    assert request(api, "GET", "/v1/templates/welcome", key=api.key).json() == t
    # name may be repeated, not changed
    r = request(api, "PUT", "/v1/templates/welcome", key=api.key,
                body={"name": "welcome", "subject": "s", "html": "h"})
    assert r.status == 200
    r = request(api, "PUT", "/v1/templates/welcome", key=api.key,
                body={"name": "renamed", "subject": "s", "html": "h"})
    field_error(r, "name", "keeps its name")
    r = request(api, "PUT", "/v1/templates/nope", key=api.key, body={"subject": "s", "html": "h"})
    assert r.status == 404 and r.error()["code"] == "not_found"


def test_delete(clean):
    api = clean
    created = create(api, WELCOME).json()
    r = request(api, "DELETE", "/v1/templates/welcome", key=api.key)
    assert r.status == 200 and r.json() == created
    for method in ("GET", "DELETE"):
        r = request(api, method, "/v1/templates/welcome", key=api.key)
        assert r.status == 404 and r.error()["code"] == "not_found", method
    r = request(api, "POST", "/v1/templates/welcome/preview", key=api.key, body={})
    assert r.status == 404
    assert create(api, WELCOME).status == 201  # the name is free again


# ---- errors -------------------------------------------------------------------------------------


def test_invalid_fields_are_400_naming_them(clean):
    api = clean
    cases = [
        ({k: v for k, v in WELCOME.items() if k != "name"}, "name", "required"),
        (dict(WELCOME, name=""), "name", "expected a string of 1 to 64"),
        (dict(WELCOME, name="x" * 65), "name", "expected a string of 1 to 64"),
        (dict(WELCOME, name="-x"), "name", "starting with a letter or a digit"),
        (dict(WELCOME, name="a b"), "name", "A-Z a-z 0-9"),
        (dict(WELCOME, name=7), "name", "expected a string"),
        ({"name": "x", "text": "t"}, "subject", "required"),
        (dict(WELCOME, subject="two\nlines"), "subject", "one line"),
        (dict(WELCOME, subject="s" * 999), "subject", "expected a string of 0 to 998"),
        (dict(WELCOME, subject=["x"]), "subject", "expected a string"),
        ({"name": "x", "subject": "s"}, "text", "a text part, an html part or both"),
        ({"name": "x", "subject": "s", "text": None, "html": None}, "text", "or both"),
        (dict(WELCOME, text=5), "text", "expected a string"),
        (dict(WELCOME, html="x" * (PART_MAX + 1)), "html", f"expected a string of 0 to {PART_MAX}"),
        (dict(WELCOME, colour="red"), "colour", "unknown field"),
    ]
    for body, field, words in cases:
        field_error(create(api, body), field, words)
    assert request(api, "GET", "/v1/templates", key=api.key).json()["templates"] == []
    # The bound itself is fine.
    assert create(api, dict(WELCOME, text="x" * PART_MAX)).status == 201


def test_malformed_json_is_400(clean):
    r = create(clean, '{"name": "x",\n "subject": }')
    assert r.status == 400
    e = r.error()
    assert e["code"] == "malformed_json" and "line 2" in e["message"]
    r = create(clean, "[1]")
    assert r.status == 400 and r.error()["code"] == "malformed_json"


def test_a_syntax_error_is_400_with_line_and_column(clean):
    api = clean
    cases = [
        ("html", "<p>\n  {{#items}}<li>{{.}}</li>\n</p>", 2, 3, 'unclosed section "items"'),
        ("text", "Dear {{name", 1, 6, "unclosed tag"),
        ("subject", "Hi {{/x}}", 1, 4, "closes no open section"),
        ("html", "{{#a}}x{{/b}}", 1, 8, 'closes section "a"'),
        ("text", "ok\n{{=<%=}}", 2, 1, "bad delimiters"),
    ]
    for part, text, line, column, words in cases:
        body = dict(WELCOME, **{part: text})
        e = field_error(create(api, body), part, words)
        assert e["line"] == line and e["column"] == column, (part, e)
        assert e["message"].startswith(f"{part}: line {line}, column {column}: "), e
        r = request(api, "PUT", "/v1/templates/nope", key=api.key, body={
            k: v for k, v in body.items() if k != "name"})
        assert r.status == 400 and r.error()["field"] == part  # checked before the lookup
    deep = "{{#a}}" * 101 + "x" + "{{/a}}" * 101
    e = field_error(create(api, dict(WELCOME, html=deep)), "html", "nest")
    assert e["line"] == 1 and e["column"] == 601
    assert request(api, "GET", "/v1/templates", key=api.key).json()["templates"] == []


def test_no_key_is_401(api):
    for method, path in (("GET", "/v1/templates"), ("POST", "/v1/templates"),
                         ("GET", "/v1/templates/x"), ("PUT", "/v1/templates/x"),
                         ("DELETE", "/v1/templates/x"), ("POST", "/v1/templates/x/preview")):
        r = request(api, method, path, body={})
        assert r.status == 401 and r.error()["code"] == "unauthorized", (method, path)
        r = request(api, method, path, body={}, key="ph_" + "1" * 64)
        assert r.status == 401, (method, path)


def test_unknown_names_are_404(clean):
    api = clean
    for path in ("/v1/templates/nope", "/v1/templates/-bad", "/v1/templates/a%20b",
                 "/v1/templates/" + "x" * 70):
        for method, body in (("GET", None), ("DELETE", None), ("POST", {})):
            p = path + ("/preview" if method == "POST" else "")
            r = request(api, method, p, key=api.key, body=body)
            assert r.status == 404 and r.error()["code"] == "not_found", (method, p)


def test_body_above_max_request_size_is_413(clean):
    api = clean
    big = dict(WELCOME, html="x" * (MAX_BODY + 1))
    r = create(api, big)
    assert r.status == 413 and r.error()["code"] == "request_too_large"
    r = request(api, "PUT", "/v1/templates/welcome", key=api.key, body=big)
    assert r.status == 413


# ---- preview -------------------------------------------------------------------------------------


def preview(api, name, body, key=None):
    return request(api, "POST", f"/v1/templates/{name}/preview", key=key or api.key, body=body)


def test_preview_renders_each_part_in_its_mode(clean):
    api = clean
    create(api, WELCOME)
    r = preview(api, "welcome", {"variables": {"name": "<Bob & Co>"}})
    assert r.status == 200, r
    assert r.json() == {"subject": "Hi <Bob & Co>", "text": "Hello <Bob & Co>\n",
                        "html": "<p>Hello &lt;Bob &amp; Co&gt;</p>", "warnings": [],
                        "warnings_truncated": False}
    create(api, {"name": "list", "subject": "{{count}} items",
                 "html": "<ul>{{#items}}<li>{{name}}{{^ok}}!{{/ok}}</li>{{/items}}</ul>"})
    r = preview(api, "list", {"variables": {"count": 2, "items": [
        {"name": "a", "ok": True}, {"name": "b"}]}})
    doc = r.json()
    assert doc["subject"] == "2 items" and doc["text"] is None
    assert doc["html"] == "<ul><li>a</li><li>b!</li></ul>"


def test_preview_reports_missing_variables(clean):
    api = clean
    create(api, {"name": "w", "subject": "Hi {{first}}", "text": "{{first}} {{last}}",
                 "html": "{{> footer}}{{#vip}}VIP{{/vip}}{{user.email}}"})
    for body in ({"variables": {}}, {}, None, {"variables": None}):
        r = preview(api, "w", body)
        assert r.status == 200, (body, r)
        doc = r.json()
        assert doc["subject"] == "Hi " and doc["text"] == " " and doc["html"] == ""
        assert doc["warnings"] == [
            {"part": "subject", "kind": "missing", "name": "first"},
            {"part": "text", "kind": "missing", "name": "first"},
            {"part": "text", "kind": "missing", "name": "last"},
            {"part": "html", "kind": "partial", "name": "footer"},
            {"part": "html", "kind": "missing", "name": "user.email"},
        ]
    r = preview(api, "w", {"variables": {"first": "A", "last": "B", "user": {"email": "e"}}})
    assert r.json()["warnings"] == [{"part": "html", "kind": "partial", "name": "footer"}]


def test_preview_subject_is_one_line(clean):
    api = clean
    create(api, {"name": "w", "subject": "Re: {{s}}", "text": "{{s}}"})
    doc = preview(api, "w", {"variables": {"s": "a\r\nBcc: x@y.z"}}).json()
    assert doc["subject"] == "Re: a  Bcc: x@y.z"
    assert doc["text"] == "a\r\nBcc: x@y.z"


def test_preview_errors(clean):
    api = clean
    create(api, {"name": "w", "subject": "{{#l}}{{long}}{{/l}}", "text": "t"})
    field_error(preview(api, "w", {"variables": [1]}), "variables", "expected an object")
    field_error(preview(api, "w", {"variables": "x"}), "variables", "expected an object")
    field_error(preview(api, "w", {"vars": {}}), "vars", "unknown field")
    r = preview(api, "w", "{nope")
    assert r.status == 400 and r.error()["code"] == "malformed_json"
    # The subject may come out at most 4 KiB.
    e = field_error(preview(api, "w", {"variables": {"l": [1] * 200, "long": "x" * 40}}),
                    "variables", "rendering the subject part stopped")
    assert e["part"] == "subject"
    assert preview(api, "w", {"variables": {"l": [1] * 20, "long": "x" * 40}}).status == 200


def test_preview_follows_changes_at_once(clean):
    api = clean
    create(api, WELCOME)
    assert preview(api, "welcome", {}).json()["text"] == "Hello \n"
    request(api, "PUT", "/v1/templates/welcome", key=api.key, body={"subject": "s", "text": "v2"})
    assert preview(api, "welcome", {}).json()["text"] == "v2"
    request(api, "DELETE", "/v1/templates/welcome", key=api.key)
    assert preview(api, "welcome", {}).status == 404


def test_a_change_on_another_node_is_rendered_within_a_second(clean):
    """Another node writes the shared database; this server was not told."""
    api = clean
    create(api, WELCOME)
    assert preview(api, "welcome", {}).json()["text"] == "Hello \n"
    db = sqlite3.connect(api.data_dir + "/posthorn.db")
    with db:
        db.execute("UPDATE templates SET text_part = 'changed', revision = revision + 1"
                   " WHERE name = 'welcome'")
    db.close()
    t0 = time.monotonic()
    while preview(api, "welcome", {}).json()["text"] != "changed":
        assert time.monotonic() - t0 < 1.0, "a change was not rendered within a second"
        time.sleep(0.05)


# ---- accounts -----------------------------------------------------------------------------------


def test_another_accounts_templates_are_out_of_reach(clean):
    api = clean
    create(api, WELCOME)
    assert request(api, "GET", "/v1/templates", key=api.bob).json()["templates"] == []
    for method, path, body in (("GET", "/v1/templates/welcome", None),
                               ("PUT", "/v1/templates/welcome", {"subject": "x", "text": "x"}),
                               ("DELETE", "/v1/templates/welcome", None),
                               ("POST", "/v1/templates/welcome/preview", {})):
        r = request(api, method, path, key=api.bob, body=body)
        assert r.status == 404 and r.error()["code"] == "not_found", (method, path)
    # bob's own template of the same name is another template
    r = create(api, dict(WELCOME, subject="bob's"), key=api.bob)
    assert r.status == 201
    assert preview(api, "welcome", {}, key=api.bob).json()["subject"] == "bob's"
    assert preview(api, "welcome", {}).json()["subject"] == "Hi "
    assert request(api, "GET", "/v1/templates/welcome", key=api.key).json()["subject"] == \
        WELCOME["subject"]


# ---- curl -----------------------------------------------------------------------------------------


def test_with_curl(clean):
    api = clean
    base = f"http://{api.http_address}"
    auth = ["-H", f"Authorization: Bearer {api.key}"]
    out = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *auth, "-d",
                          json.dumps(WELCOME), base + "/v1/templates"],
                         capture_output=True, text=True, timeout=30).stdout
    body, code = out.rsplit("\n", 1)
    assert code == "201" and json.loads(body)["name"] == "welcome"
    out = subprocess.run(["curl", "-s", *auth, "-d", '{"variables": {"name": "Ann"}}',
                          base + "/v1/templates/welcome/preview"],
                         capture_output=True, text=True, timeout=30).stdout
    assert json.loads(out)["html"] == "<p>Hello Ann</p>"
