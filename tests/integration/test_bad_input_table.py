"""
test_bad_input_table.py - one table of bad inputs, each row one test.

ROWS below is data: a category, what is sent (a request, raw bytes, or a
workflow file put into the cfg dir and loaded), and the answer expected
(the status and a fragment of the JSON error message, the HTTP library's own
answer, or what the client sees when the connection is closed). Every row
becomes a test method of BadInputTableTest; each asserts the answer, that
Redis holds exactly what it held before (every key and its contents), and
that batchy is still running and answering /index.

The same rows are the table of tests/README.md:

    python3 tests/integration/test_bad_input_table.py --markdown

prints it, and ReadmeTableTest fails when the page and the rows differ.

Most rows go to one batchy; the rows marked token go to a second one, on
the same Redis and cfg dir, started with --token.
"""
import base64
import json
import os
import re
import select
import socket
import sys
import time
import unittest
from collections import namedtuple

from harness import DUMP_SCRIPT, REPO_ROOT, SLOW, Batchy, ServiceTestCase

TOKEN = "s3cret"
README = os.path.join(REPO_ROOT, "tests", "README.md")
TABLE_HEADER = "| # | category | input | answer |"
CLOSED_TEXT = "connection closed without answer"

# The state every row starts from: wf1 loaded, a batch open, job2 closed
# (job1 is open, job2 succeeded).
WF1_YAML = "job1:\n  p: 1\njob2:\n"
SECRET_YAML = "stolen:\n  secret: from_outside_the_cfg_dir\n"


# ---------------------------------------------------------------- what is sent

class Http(namedtuple("Http", "method target headers body")):
    """A request: method, request target as sent (no re-encoding), extra
    headers [(name, value)], body bytes (Content-Length added) or None."""

    def raw(self):
        lines = ["%s %s HTTP/1.1" % (self.method, self.target), "Host: 127.0.0.1"]
        lines += ["%s: %s" % h for h in self.headers]
        if self.body is not None and not any(n.lower() in ("content-length", "transfer-encoding")
                                             for n, _ in self.headers):
            lines.append("Content-Length: %d" % len(self.body))
        lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head + (self.body or b"")


class Raw(namedtuple("Raw", "data")):
    """Bytes sent as they are (a request no HTTP client would write)."""

    def raw(self):
        return self.data


class Cfg(namedtuple("Cfg", "workflow ext content")):
    """cfg/<workflow><ext> holding content (bytes, FIFO or DIRECTORY),
    then GET /load_cfg/<workflow>."""

    def raw(self):
        return Http("GET", "/load_cfg/" + self.workflow, [], None).raw()


FIFO = "<a named pipe>"
DIRECTORY = "<a directory>"


def get(target, headers=()):
    return Http("GET", target, list(headers), None)


def req(method, target, headers=(), body=None):
    return Http(method, target, list(headers), body)


def form(target, body, content_type="application/x-www-form-urlencoded", headers=()):
    hdrs = list(headers)
    if content_type:
        hdrs.insert(0, ("Content-Type", content_type))
    return Http("POST", target, hdrs, body)


def cfg(workflow, content, ext=".yaml"):
    if isinstance(content, str) and content not in (FIFO, DIRECTORY):
        content = content.encode("utf-8")
    return Cfg(workflow, ext, content)


# ---------------------------------------------------------------- what comes back

class Answer(namedtuple("Answer", "status kind fragment")):
    """kind: "json" (batchy's {"error": ...} holding fragment), "empty"
    (HEAD: status and no body), "library" (libmicrohttpd answers by itself,
    not JSON: status only) or "closed" (no answer, the connection ends)."""

    def markdown(self):
        if self.kind == "json":
            return "%d `%s`" % (self.status, self.fragment)
        if self.kind == "empty":
            return "%d, no body (HEAD)" % self.status
        if self.kind == "library":
            return "%d from libmicrohttpd (not JSON)" % self.status
        return CLOSED_TEXT


def error(status, fragment):
    return Answer(status, "json", fragment)


def no_body(status):
    return Answer(status, "empty", None)


def library(status):
    return Answer(status, "library", None)


CLOSED = Answer(None, "closed", None)

Row = namedtuple("Row", "category slug input send answer token")


def row(category, slug, shown, send, answer, token=False):
    """One row: token=True sends it to the batchy started with --token."""
    return Row(category, slug, shown, send, answer, token)


# ---------------------------------------------------------------- the rows

def _many_params(n):
    return "&".join("p%d=%d" % (i, i) for i in range(n))


BILLION_LAUGHS = "".join(
    ["job1:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n"] +
    ["  %s: &%s [%s]\n" % (c, c, ", ".join(["*" + p] * 10)) for p, c in zip("abcdefgh", "bcdefghi")])

# A TLS 1.3 ClientHello as OpenSSL sends it first for https://localhost/
# (517 bytes), with its random fields zeroed so that it is always the same.
TLS_CLIENT_HELLO = base64.b64decode(
    "FgMBAgABAAH8AwMAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAACAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAkEwITAxMBwCzAMMArwC/MqcyowCTAKMAjwCcAnwCeAGsAZwD/AQABjwAAAA4ADAAACWxvY2Fs"
    "aG9zdAALAAQDAAECAAoAFgAUAB0AFwAeABkAGAEAAQEBAgEDAQQAIwAAABYAAAAXAAAADQAqACgEAwUDBgMIBwgI"
    "CAkICggLCAQIBQgGBAEFAQYBAwMDAQMCBAIFAgYCACsABQQDBAMDAC0AAgEBADMAJgAkAB0AIAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAABUA5AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==")

OVER_1_MIB = b"job1:\n  p: 1\n" + b"# padding\n" * (1024 * 1024 // 10)

ROWS = [
    # -------- workflow names
    row("workflow name", "workflow_name_with_leading_dot", "`GET /get_status/.hidden`",
        get("/get_status/.hidden"), error(400, "workflow name must be")),
    row("workflow name", "workflow_name_with_leading_dash", "`GET /open_batch/-wf1`",
        get("/open_batch/-wf1"), error(400, "workflow name must be")),
    row("workflow name", "workflow_name_with_space", "`GET /open_batch/wf%201`",
        get("/open_batch/wf%201"), error(400, "workflow name must be")),
    row("workflow name", "workflow_name_not_ascii", "`GET /load_cfg/%C3%A9t%C3%A9`",
        get("/load_cfg/%C3%A9t%C3%A9"), error(400, "workflow name must be")),
    row("workflow name", "workflow_name_with_encoded_slash", "`GET /open_batch/wf1%2Fsh`",
        get("/open_batch/wf1%2Fsh"), error(400, "cannot hold '/'")),
    row("workflow name", "workflow_name_with_nul", "`GET /get_status/wf1%00x`",
        get("/get_status/wf1%00x"), error(400, "without NUL")),
    row("workflow name", "workflow_name_invalid_utf8", "`GET /close_batch/wf%FF`",
        get("/close_batch/wf%FF"), error(400, "UTF-8")),
    row("workflow name", "workflow_name_like_a_batch_snapshot", "`GET /open_batch/wf1-1700000000`",
        get("/open_batch/wf1-1700000000"), error(400, "snapshot keys")),
    row("workflow name", "workflow_name_like_an_init_snapshot",
        "`GET /load_cfg/wf1-1700000000-init`",
        get("/load_cfg/wf1-1700000000-init"), error(400, "snapshot keys")),
    row("workflow name", "workflow_never_loaded", "`GET /open_batch/never_loaded`",
        get("/open_batch/never_loaded"), error(404, "'never_loaded' is not loaded")),
    row("workflow name", "workflow_without_cfg_file", "`GET /load_cfg/no_such_file`",
        get("/load_cfg/no_such_file"), error(404, "no file no_such_file.yaml")),

    # -------- step names (step= of close_batch / fail_batch)
    row("step name", "step_unknown", "`GET /close_batch/wf1?step=nosuch`",
        get("/close_batch/wf1?step=nosuch"), error(404, "has no step 'nosuch'")),
    row("step name", "step_unknown_after_a_known_one", "`GET /close_batch/wf1?step=job1,nosuch`",
        get("/close_batch/wf1?step=job1,nosuch"), error(404, "has no step 'nosuch'")),
    row("step name", "step_empty", "`GET /close_batch/wf1?step=`",
        get("/close_batch/wf1?step="), error(400, "step= is empty")),
    row("step name", "step_with_brackets", "`GET /close_batch/wf1?step=%5Bx%5D`",
        get("/close_batch/wf1?step=%5Bx%5D"), error(400, "[ or ]")),
    row("step name", "step_with_newline", "`GET /fail_batch/wf1?step=job1%0A`",
        get("/fail_batch/wf1?step=job1%0A"), error(400, "control characters")),
    row("step name", "step_not_open", "`GET /fail_batch/wf1?step=job2` (job2 succeeded)",
        get("/fail_batch/wf1?step=job2"), error(409, "step 'job2' of workflow 'wf1' is not open")),

    # -------- paths
    row("path", "path_unknown_endpoint", "`GET /nope`",
        get("/nope"), error(404, "no such endpoint")),
    row("path", "path_without_workflow", "`GET /open_batch`",
        get("/open_batch"), error(404, "open_batch takes")),
    row("path", "path_unknown_format", "`GET /open_batch/wf1/xml`",
        get("/open_batch/wf1/xml"), error(400, "unknown format 'xml'")),
    row("path", "path_format_on_close_batch", "`GET /close_batch/wf1/json`",
        get("/close_batch/wf1/json"), error(404, "close_batch takes /<workflow>")),
    row("path", "path_traversal", "`GET /load_cfg/../secret`",
        get("/load_cfg/../secret"), error(404, "load_cfg takes /<workflow>")),
    row("path", "path_traversal_encoded", "`GET /load_cfg/..%2Fsecret`",
        get("/load_cfg/..%2Fsecret"), error(400, "cannot hold '/'")),
    row("path", "path_dot_dot_as_workflow", "`GET /load_cfg/..`",
        get("/load_cfg/.."), error(400, "workflow name must be")),
    row("path", "path_with_double_slash", "`GET //get_status/wf1`",
        get("//get_status/wf1"), error(404, "no such endpoint")),
    row("path", "path_with_bad_percent_escape", "`GET /get_status/wf%zz`",
        get("/get_status/wf%zz"), error(400, "workflow name must be")),
    row("path", "path_not_starting_with_slash", "`GET get_status/wf1 HTTP/1.1`",
        get("get_status/wf1"), error(404, "no such endpoint")),
    row("path", "path_unknown_http_version", "`GET /index HTTP/9.9`",
        Raw(b"GET /index HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n"), library(505)),

    # -------- query strings
    row("query string", "query_special_field", "`GET /close_batch/wf1?status=success`",
        get("/close_batch/wf1?status=success"), error(400, "'status' is a special field")),
    row("query string", "query_special_field_on_fail", "`GET /fail_batch/wf1?error_message=x`",
        get("/fail_batch/wf1?error_message=x"), error(400, "'error_message' is a special field")),
    row("query string", "query_special_field_expected_by", "`GET /close_batch/wf1?expected_by=07:00`",
        get("/close_batch/wf1?expected_by=07:00"), error(400, "'expected_by' is a special field")),
    # names that sh or infa would print as a special field: after `eval`
    # they would override it (the sh rule: upper-cased, other bytes as _;
    # infa readers compare names without case)
    row("query string", "query_special_field_upper_case",
        "`GET /close_batch/wf1?step=job1&FROM_DATE=1999-01-01`",
        get("/close_batch/wf1?step=job1&FROM_DATE=1999-01-01"),
        error(400, "'FROM_DATE' is a special field that close_batch cannot set")),
    row("query string", "query_special_field_with_dash", "`GET /close_batch/wf1?from-date=1999-01-01`",
        get("/close_batch/wf1?from-date=1999-01-01"), error(400, "'from-date' is a special field")),
    row("query string", "query_special_field_mixed_case", "`GET /fail_batch/wf1?From_Date=1999-01-01`",
        get("/fail_batch/wf1?From_Date=1999-01-01"),
        error(400, "'From_Date' is a special field that fail_batch cannot set")),
    row("query string", "query_special_field_with_dot", "`GET /close_batch/wf1?batch.id=1`",
        get("/close_batch/wf1?batch.id=1"), error(400, "'batch.id' is a special field")),
    row("query string", "query_special_field_long_s", "`GET /close_batch/wf1?%C5%BFtatus=x` "
        "(`ſtatus`, long s)",
        get("/close_batch/wf1?%C5%BFtatus=x"), error(400, "is a special field")),
    row("query string", "query_step_parameter_upper_case", "`GET /close_batch/wf1?STEP=job1`",
        get("/close_batch/wf1?STEP=job1"), error(400, "'STEP' is a special field")),
    row("query string", "query_error_on_close", "`GET /close_batch/wf1?error=x`",
        get("/close_batch/wf1?error=x"), error(400, "error= is for fail_batch")),
    row("query string", "query_token_without_token_configured", "`GET /fail_batch/wf1?token=abc`",
        get("/fail_batch/wf1?token=abc"), error(400, "'token' is a special field")),
    row("query string", "query_batch_id_not_a_number", "`GET /close_batch/wf1?batch_id=abc`",
        get("/close_batch/wf1?batch_id=abc"), error(400, "batch_id must be a whole number")),
    row("query string", "query_batch_id_negative", "`GET /get_status/wf1?batch_id=-1`",
        get("/get_status/wf1?batch_id=-1"), error(400, "batch_id must be a whole number")),
    row("query string", "query_batch_id_over_16_digits",
        "`GET /get_status/wf1?batch_id=12345678901234567`",
        get("/get_status/wf1?batch_id=12345678901234567"), error(400, "batch_id must be a whole number")),
    row("query string", "query_batch_id_stale", "`GET /close_batch/wf1?batch_id=1`",
        get("/close_batch/wf1?batch_id=1"), error(409, "batch 1 is not the current batch")),
    row("query string", "query_batch_id_unknown", "`GET /get_status/wf1?batch_id=12345`",
        get("/get_status/wf1?batch_id=12345"), error(404, "has no batch 12345")),
    row("query string", "query_value_with_nul", "`GET /close_batch/wf1?rows=12%0034`",
        get("/close_batch/wf1?rows=12%0034"), error(400, "without NUL")),
    row("query string", "query_value_invalid_utf8", "`GET /close_batch/wf1?note=%FF%FE`",
        get("/close_batch/wf1?note=%FF%FE"), error(400, "UTF-8")),
    row("query string", "query_name_invalid_utf8", "`GET /close_batch/wf1?%C0%AF=1`",
        get("/close_batch/wf1?%C0%AF=1"), error(400, "UTF-8")),
    row("query string", "query_empty_name", "`GET /close_batch/wf1?=x`",
        get("/close_batch/wf1?=x"), error(400, "empty name")),
    row("query string", "query_wrong_token_parameter", "`GET /open_batch/wf1?token=wrong` "
        "(token configured)",
        get("/open_batch/wf1?token=wrong"), error(401, "missing or wrong token"), token=True),

    # -------- workflow files in the cfg dir, then GET /load_cfg/<name>
    row("YAML file", "yaml_unclosed_flow_sequence", "`p: [1, 2` (no closing bracket)",
        cfg("unclosed", "job1:\n  p: [1, 2\n"), error(422, "unclosed.yaml:3:1:")),
    row("YAML file", "yaml_tab_indentation", "`job1:` then a line `<TAB>p: 1`",
        cfg("tabbed", "job1:\n\tp: 1\n"), error(422, "tabbed.yaml:2:1:")),
    row("YAML file", "yaml_top_level_list", "`- job1` `- job2` (a list)",
        cfg("toplist", "- job1\n- job2\n"), error(422, "toplist.yaml:1:1: the top level must map")),
    row("YAML file", "yaml_top_level_scalar", "`just some text`",
        cfg("topscalar", "just some text\n"), error(422, "topscalar.yaml:1:1: the top level must map")),
    row("YAML file", "yaml_step_value_a_list", "`job1: [a, b]`",
        cfg("steplist", "job1: [a, b]\n"), error(422, "steplist.yaml:1:7:")),
    row("YAML file", "yaml_step_value_a_number", "`job1: 5`",
        cfg("stepnumber", "job1: 5\n"), error(422, "stepnumber.yaml:1:7:")),
    row("YAML file", "yaml_empty_file", "an empty file",
        cfg("emptyfile", ""), error(422, "emptyfile.yaml:1:1: no steps")),
    row("YAML file", "yaml_only_comments", "`# nothing here`",
        cfg("comments", "# nothing here\n"), error(422, "no steps")),
    row("YAML file", "yaml_file_over_1_mib", "a valid file padded with comments to 1 MiB + 5 bytes",
        cfg("toolarge", OVER_1_MIB), error(413, "1 MiB")),
    row("YAML file", "yaml_impossible_date", "`from_date: \"2026-02-30\"`",
        cfg("baddate", "job1:\n  from_date: \"2026-02-30\"\n"), error(422, "baddate.yaml:2:14:")),
    row("YAML file", "yaml_date_not_a_date", "`from_date: yesterday`",
        cfg("worddate", "job1:\n  from_date: yesterday\n"), error(422, "worddate.yaml:2:14:")),
    row("YAML file", "yaml_negative_reprocess_hours", "`reprocess_hours: -1`",
        cfg("neghours", "job1:\n  reprocess_hours: -1\n"), error(422, "reprocess_hours")),
    row("YAML file", "yaml_expected_by_unquoted", "`expected_by: 12:30` (a number to YAML 1.1)",
        cfg("byunquoted", "job1:\n  expected_by: 12:30\n"), error(422, '"HH:MM"')),
    row("YAML file", "yaml_expected_by_out_of_range", '`expected_by: "24:00"`',
        cfg("byrange", 'job1:\n  expected_by: "24:00"\n'), error(422, '"HH:MM"')),
    row("YAML file", "yaml_trunc_start_not_boolean", "`trunc_start: maybe`",
        cfg("badtrunc", "job1:\n  trunc_start: maybe\n"),
        error(422, "trunc_start must be true or false")),
    row("YAML file", "yaml_unknown_status", "`status: done`",
        cfg("badstatus", "job1:\n  status: done\n"), error(422, "status must be one of")),
    row("YAML file", "yaml_batch_id_fraction", "`batch_id: 1.5`",
        cfg("badbatchid", "job1:\n  batch_id: 1.5\n"), error(422, "batch_id")),
    row("YAML file", "yaml_parameter_like_a_special_field", "`FROM_DATE: 1999-01-01` in a step",
        cfg("lookalike", "job1:\n  p: 1\n  FROM_DATE: 1999-01-01\n"),
        error(422, "lookalike.yaml:3:3: parameter \"FROM_DATE\" would pass for the special field "
              "from_date")),
    row("YAML file", "yaml_parameter_like_a_special_field_by_merge",
        "`<<: *defaults` bringing `Batch-Id: 5` into a step",
        cfg("lookmerge", "defaults:\n  opts: &d {Batch-Id: 5}\njob1:\n  <<: *d\n"),
        error(422, "lookmerge.yaml:4:7: parameter \"Batch-Id\" would pass for the special field "
              "batch_id")),
    row("YAML file", "yaml_step_name_with_brackets", "`\"[job1]\":`",
        cfg("bracketstep", "\"[job1]\":\n  p: 1\n"), error(422, "[ or ]")),
    row("YAML file", "yaml_step_name_with_control_character", "`\"job\\x01\":`",
        cfg("ctrlstep", "\"job\\x01\":\n  p: 1\n"), error(422, "control characters")),
    row("YAML file", "yaml_step_name_over_256_bytes", "a step name of 257 bytes",
        cfg("longstep", "%s:\n  p: 1\n" % ("s" * 257)), error(422, "1-256 bytes")),
    row("YAML file", "yaml_billion_laughs", "9 levels of anchors, each alias repeated 10 times",
        cfg("laughs", BILLION_LAUGHS), error(422, "billion laughs")),
    row("YAML file", "yaml_undefined_alias", "`job1: *nowhere`",
        cfg("noanchor", "job1: *nowhere\n"), error(422, "nowhere")),
    row("YAML file", "yaml_alias_inside_its_own_anchor", "`job1: &a {p: *a}`",
        cfg("selfalias", "job1: &a {p: *a}\n"), error(422, "selfalias.yaml:1:14:")),
    row("YAML file", "yaml_merge_of_a_scalar", "`job1: {<<: 5}`",
        cfg("badmerge", "job1:\n  <<: 5\n"), error(422, "badmerge.yaml:2:7:")),
    row("YAML file", "yaml_mapping_as_key", "`? {a: 1}` `: x` in a step",
        cfg("mapkey", "job1:\n  ? {a: 1}\n  : x\n"), error(422, "keys must be scalars")),
    row("YAML file", "yaml_nesting_too_deep", "`p:` and 100 nested `[`...`]`",
        cfg("deep", "job1:\n  p: %s%s\n" % ("[" * 100, "]" * 100)), error(422, "deeper than 64")),
    row("YAML file", "yaml_duplicate_step", "`job1:` twice",
        cfg("dupstep", "job1:\n  p: 1\njob1:\n  p: 2\n"), error(422, "duplicate step \"job1\"")),
    row("YAML file", "yaml_duplicate_key", "`p: 1` twice in one step",
        cfg("dupkey", "job1:\n  p: 1\n  p: 2\n"), error(422, "duplicate key \"p\"")),
    row("YAML file", "yaml_nul_byte", "`job1:\\n  p: a` NUL `b`",
        cfg("nulbyte", b"job1:\n  p: a\x00b\n"), error(422, "nulbyte.yaml:2:7:")),
    row("YAML file", "yaml_invalid_utf8", "`job1:\\n  p: ` then the bytes FF FE",
        cfg("badutf8", b"job1:\n  p: \xff\xfe\n"), error(422, "badutf8.yaml:2:6:")),
    row("YAML file", "yaml_two_documents", "`job1:` `---` `job2:`",
        cfg("twodocs", "job1:\n---\njob2:\n"), error(422, "twodocs.yaml:2:1:")),
    row("YAML file", "yaml_infinity", "`p: .inf`",
        cfg("infinite", "job1:\n  p: .inf\n"), error(422, ".inf cannot be stored in JSON")),
    row("YAML file", "yaml_integer_beyond_2_pow_53", "`p: 9007199254740993`",
        cfg("bigint", "job1:\n  p: 9007199254740993\n"), error(422, "bigint.yaml:2:6:")),
    row("YAML file", "yaml_unknown_tag", "`p: !!python/object:os.system x`",
        cfg("badtag", "job1:\n  p: !!python/object:os.system x\n"), error(422, "badtag.yaml:2:6:")),
    row("YAML file", "yaml_bad_yml_file", "`cfg/ymlbad.yml` holding `- x`",
        cfg("ymlbad", "- x\n", ext=".yml"), error(422, "ymlbad.yml:1:1:")),
    row("YAML file", "yaml_file_is_a_directory", "`cfg/dirwf.yaml` is a directory",
        cfg("dirwf", DIRECTORY), error(404, "not a regular file")),
    row("YAML file", "yaml_file_is_a_fifo", "`cfg/fifowf.yaml` is a named pipe nobody writes to",
        cfg("fifowf", FIFO), error(404, "not a regular file")),

    # -------- headers
    row("header", "header_no_authorization", "no `Authorization` (token configured)",
        get("/open_batch/wf1"), error(401, "missing or wrong token"), token=True),
    row("header", "header_basic_scheme", "`Authorization: Basic czNjcmV0`",
        get("/open_batch/wf1", [("Authorization", "Basic czNjcmV0")]),
        error(401, "missing or wrong token"), token=True),
    row("header", "header_token_scheme", "`Authorization: Token s3cret`",
        get("/close_batch/wf1", [("Authorization", "Token s3cret")]),
        error(401, "missing or wrong token"), token=True),
    row("header", "header_bearer_without_token", "`Authorization: Bearer`",
        get("/load_cfg/wf1", [("Authorization", "Bearer")]),
        error(401, "missing or wrong token"), token=True),
    row("header", "header_bearer_wrong_token", "`Authorization: Bearer s3cret2`",
        get("/fail_batch/wf1", [("Authorization", "Bearer s3cret2")]),
        error(401, "missing or wrong token"), token=True),
    row("header", "header_one_huge_header", "one header of 100,000 bytes",
        get("/get_status/wf1", [("X-Big", "a" * 100000)]), library(431)),
    row("header", "header_too_many_headers", "5,000 headers `X-H<i>: v`",
        get("/get_status/wf1", [("X-H%d" % i, "v") for i in range(5000)]), library(431)),
    row("header", "header_content_length_not_a_number", "`Content-Length: abc` on POST",
        req("POST", "/close_batch/wf1", [("Content-Length", "abc")], b""), library(400)),
    row("header", "header_content_length_negative", "`Content-Length: -5` on POST",
        req("POST", "/close_batch/wf1", [("Content-Length", "-5")], b""), library(400)),
    row("header", "header_content_length_twice", "`Content-Length: 3` and `Content-Length: 5`",
        req("POST", "/close_batch/wf1", [("Content-Type", "application/x-www-form-urlencoded"),
                                         ("Content-Length", "3"), ("Content-Length", "5")],
            b"a=1b=2"), error(400, "Content-Length")),
    row("header", "header_chunked_form_with_special_field",
        "chunked POST body `status=x` to `/close_batch/wf1`",
        req("POST", "/close_batch/wf1", [("Content-Type", "application/x-www-form-urlencoded"),
                                         ("Transfer-Encoding", "chunked")],
            b"8\r\nstatus=x\r\n0\r\n\r\n"), error(400, "'status' is a special field")),
    row("header", "header_chunked_bad_chunk_size", "chunked POST, chunk size `zz`",
        req("POST", "/close_batch/wf1", [("Content-Type", "application/x-www-form-urlencoded"),
                                         ("Transfer-Encoding", "chunked")],
            b"zz\r\nstep=job1\r\n0\r\n\r\n"), library(400)),
    row("header", "header_json_body_on_close", "`Content-Type: application/json`, "
        "body `{\"step\": \"job2\"}`",
        form("/close_batch/wf1", b'{"step": "job2"}', "application/json"),
        error(415, "must be a form")),
    row("header", "header_form_body_without_content_type", "POST body `step=job2`, no `Content-Type`",
        form("/close_batch/wf1", b"step=job2", None), error(415, "must be a form")),
    row("header", "header_form_body_invalid_utf8", "form body `note=%FF`",
        form("/close_batch/wf1", b"note=%FF"), error(400, "UTF-8")),
    row("header", "header_form_body_encoded_nul", "form body `rows=12%0034`",
        form("/close_batch/wf1", b"rows=12%0034"), error(400, "without NUL")),
    row("header", "header_form_body_raw_nul", "form body `rows=1` NUL `2`",
        form("/close_batch/wf1", b"rows=1\x002"), error(400, "without NUL")),

    # -------- methods
    row("method", "method_put", "`PUT /open_batch/wf1`",
        req("PUT", "/open_batch/wf1"), error(405, "method PUT not allowed")),
    row("method", "method_delete", "`DELETE /load_cfg/wf1`",
        req("DELETE", "/load_cfg/wf1"), error(405, "method DELETE not allowed")),
    row("method", "method_patch", "`PATCH /close_batch/wf1`",
        req("PATCH", "/close_batch/wf1", body=b"step=job1"), error(405, "method PATCH not allowed")),
    row("method", "method_options", "`OPTIONS /fail_batch/wf1`",
        req("OPTIONS", "/fail_batch/wf1"), error(405, "method OPTIONS not allowed")),
    row("method", "method_head_on_open_batch", "`HEAD /open_batch/wf1`",
        req("HEAD", "/open_batch/wf1"), no_body(405)),
    row("method", "method_head_on_close_batch", "`HEAD /close_batch/wf1`",
        req("HEAD", "/close_batch/wf1"), no_body(405)),
    row("method", "method_head_on_load_cfg", "`HEAD /load_cfg/wf1`",
        req("HEAD", "/load_cfg/wf1"), no_body(405)),
    row("method", "method_lower_case_get", "`get /open_batch/wf1`",
        req("get", "/open_batch/wf1"), error(405, "method get not allowed")),
    row("method", "method_made_up", "`BREW /open_batch/wf1`",
        req("BREW", "/open_batch/wf1"), error(405, "method BREW not allowed")),
    row("method", "method_with_separator_characters", "`G(E)T /index`",
        req("G(E)T", "/index"), error(405, "method G(E)T not allowed")),
    row("method", "method_garbage_line", "`GARBAGE` then an empty line",
        Raw(b"GARBAGE\r\n\r\n"), CLOSED),
    row("method", "method_tls_client_hello", "a TLS ClientHello (`https://` to the HTTP port)",
        Raw(TLS_CLIENT_HELLO), library(400)),

    # -------- sizes
    row("size", "size_workflow_name_129_characters", "`GET /get_status/aaa...` (129 characters)",
        get("/get_status/" + "a" * 129), error(400, "1-128 characters")),
    row("size", "size_workflow_name_300_characters", "`GET /open_batch/aaa...` (300 characters)",
        get("/open_batch/" + "a" * 300), error(400, "1-128 characters")),
    row("size", "size_step_name_257_bytes", "`GET /close_batch/wf1?step=sss...` (257 bytes)",
        get("/close_batch/wf1?step=" + "s" * 257), error(400, "1-256 bytes")),
    row("size", "size_4000_steps_in_one_step_parameter", "`step=a,a,a,...` (4,000 names)",
        get("/close_batch/wf1?step=" + ",".join(["a"] * 4000)), error(400, "too many step= values")),
    row("size", "size_parameter_value_over_8_kib", "`?rows=` and 8,193 bytes",
        get("/close_batch/wf1?rows=" + "1" * 8193), error(400, "parameter too long")),
    row("size", "size_parameter_name_over_256_bytes", "a parameter name of 257 bytes",
        get("/close_batch/wf1?%s=1" % ("n" * 257)), error(400, "parameter too long")),
    row("size", "size_257_parameters", "`GET /close_batch/wf1?p0=0&...&p256=256`",
        get("/close_batch/wf1?" + _many_params(257)), error(400, "too many parameters")),
    row("size", "size_1000_parameters", "`GET /close_batch/wf1?p0=0&...&p999=999`",
        get("/close_batch/wf1?" + _many_params(1000)), CLOSED),
    row("size", "size_query_string_100_kb", "`GET /get_status/wf1?x=` and 100,000 bytes",
        get("/get_status/wf1?x=" + "a" * 100000), library(414)),
    row("size", "size_path_100_kb", "`GET /get_status/` and 100,000 bytes",
        get("/get_status/" + "a" * 100000), library(414)),
    row("size", "size_10001_steps", "a workflow file of 10,001 steps `s00001:` ... `s10001:`",
        cfg("manysteps", "".join("s%05d:\n" % i for i in range(1, 10002))),
        error(422, "manysteps.yaml:10001:1: more than 10000 steps")),
    row("size", "size_form_body_over_64_kib", "form body `note=` and 65,536 bytes",
        form("/close_batch/wf1", b"note=" + b"x" * 65536), error(413, "64 KiB")),
    row("size", "size_form_body_2_mib", "form body `note=` and 2 MiB",
        form("/close_batch/wf1", b"note=" + b"x" * (2 * 1024 * 1024)), error(413, "64 KiB")),
    # -------- operating: lists, history, reload
    # -------- waiting: held requests and event streams
    row("waiting", "wait_zero", "`GET /get_status/wf1?wait=0`, `If-None-Match: *`",
        get("/get_status/wf1?wait=0", headers=(("If-None-Match", "*"),)),
        error(400, "wait must be a whole number of seconds from 1 to 600")),
    row("waiting", "wait_over_600", "`GET /get_status/wf1?wait=601`",
        get("/get_status/wf1?wait=601"),
        error(400, "wait must be a whole number of seconds from 1 to 600")),
    row("waiting", "wait_not_a_number", "`GET /get_status/wf1?wait=1.5`",
        get("/get_status/wf1?wait=1.5"),
        error(400, "wait must be a whole number of seconds from 1 to 600")),
    row("waiting", "events_empty_name", "`GET /events?wf=a,,b`",
        get("/events?wf=a,,b"), error(400, "comma-separated list of workflow names")),
    row("waiting", "events_snapshot_key", "`GET /events?wf=wf1-1795413600`",
        get("/events?wf=wf1-1795413600"), error(400, "must not end in -<digits>")),
    row("waiting", "events_post", "`POST /events`",
        req("POST", "/events", body=b""), error(405, "")),
    row("operating", "history_limit_zero", "`GET /history/wf1?limit=0`",
        get("/history/wf1?limit=0"), error(400, "limit must be a whole number from 1 to 1000")),
    row("operating", "history_limit_huge", "`GET /history/wf1?limit=1001`",
        get("/history/wf1?limit=1001"), error(400, "limit must be a whole number from 1 to 1000")),
    row("operating", "history_limit_not_a_number", "`GET /history/wf1?limit=ten`",
        get("/history/wf1?limit=ten"), error(400, "limit must be a whole number")),
    row("operating", "history_before_negative", "`GET /history/wf1?before=-5`",
        get("/history/wf1?before=-5"), error(400, "before must be a whole number from 1")),
    row("operating", "history_before_huge", "`GET /history/wf1?before=` and 20 digits",
        get("/history/wf1?before=99999999999999999999"),
        error(400, "before must be a whole number from 1")),
    row("operating", "history_of_a_snapshot_key", "`GET /history/wf1-1795413600`",
        get("/history/wf1-1795413600"), error(400, "must not end in -<digits>")),
    row("operating", "history_of_unknown_workflow", "`GET /history/nowhere`",
        get("/history/nowhere"), error(404, "workflow 'nowhere' is not loaded")),
    row("operating", "workflows_unknown_status", "`GET /workflows?status=done`",
        get("/workflows?status=done"), error(400, "status must be new, open, success")),
    row("operating", "workflows_prefix_with_star", "`GET /workflows?prefix=wf*`",
        get("/workflows?prefix=wf*"), error(400, "prefix must be the start of a workflow name")),
    row("operating", "workflows_prefix_with_colon", "`GET /workflows?prefix=batchy:`",
        get("/workflows?prefix=batchy:"),
        error(400, "prefix must be the start of a workflow name")),
    row("operating", "load_cfg_keep_unknown", "`GET /load_cfg/wf1?keep=all`",
        get("/load_cfg/wf1?keep=all"), error(400, "keep must be 'state'")),
    row("operating", "load_cfg_dry_run_not_a_flag", "`GET /load_cfg/wf1?dry_run=maybe`",
        get("/load_cfg/wf1?dry_run=maybe"), error(400, "dry_run must be 1 or 0")),
    row("operating", "rewind_without_from_date", "`GET /rewind/wf1`",
        get("/rewind/wf1"), error(400, "from_date= is required")),
    row("operating", "rewind_to_a_bad_time", "`GET /rewind/wf1?from_date=last%20week`",
        get("/rewind/wf1?from_date=last%20week"), error(400, "from_date must be a time")),
    row("operating", "rewind_before_the_origin", "`GET /rewind/wf1?from_date=1700-01-01`",
        get("/rewind/wf1?from_date=1700-01-01"), error(400, "is not between 1776-07-04")),
    row("operating", "rewind_into_the_future", "`GET /rewind/wf1?from_date=2999-01-01`",
        get("/rewind/wf1?from_date=2999-01-01"), error(400, "is not between 1776-07-04")),
    row("operating", "rewind_an_open_step", "`GET /rewind/wf1?from_date=2026-01-01` (job1 is open)",
        get("/rewind/wf1?from_date=2026-01-01"), error(409, "step 'job1' of workflow 'wf1' is open")),
    row("operating", "rewind_unknown_step", "`GET /rewind/wf1?from_date=2026-01-01&step=nope`",
        get("/rewind/wf1?from_date=2026-01-01&step=nope"), error(404, "has no step 'nope'")),
    row("operating", "rewind_to_as_a_close_parameter", "`GET /close_batch/wf1?rewind_to=2026-01-01`",
        get("/close_batch/wf1?rewind_to=2026-01-01"), error(400, "'rewind_to' is a special field")),
    row("operating", "rewind_with_head", "`HEAD /rewind/wf1?from_date=2026-01-01`",
        Http("HEAD", "/rewind/wf1?from_date=2026-01-01", [], None), library(405)),
    row("dashboard", "ui_unknown_file", "`GET /ui/-/nope.js`",
        get("/ui/-/nope.js"), error(404, "no such file of the dashboard")),
    row("dashboard", "ui_file_dot_dot", "`GET /ui/-/..`",
        get("/ui/-/.."), error(404, "no such file of the dashboard")),
    row("dashboard", "ui_file_upper_case", "`GET /ui/-/App.js`",
        get("/ui/-/App.js"), error(404, "no such file of the dashboard")),
    row("dashboard", "ui_path_too_deep", "`GET /ui/wf1/x`",
        get("/ui/wf1/x"), error(404, "ui takes /<workflow> or /-/<file>")),
    row("dashboard", "ui_dash_alone", "`GET /ui/-`",
        get("/ui/-"), error(400, "")),
    row("dashboard", "ui_snapshot_key", "`GET /ui/wf1-1795413600`",
        get("/ui/wf1-1795413600"), error(400, "must not end in -<digits>")),
    row("dashboard", "ui_post", "`POST /ui`",
        req("POST", "/ui", body=b""), error(405, "use GET (or HEAD)")),
]


# ---------------------------------------------------------------- markdown

def _cell(text):
    return text.replace("|", "\\|")


def markdown_table(rows=ROWS):
    lines = [TABLE_HEADER, "|---|---|---|---|"]
    for n, r in enumerate(rows, 1):
        lines.append("| %d | %s | %s | %s |" % (n, r.category, _cell(r.input),
                                              _cell(r.answer.markdown())))
    return "\n".join(lines) + "\n"


def readme_table(path=README):
    """The bad-input table of tests/README.md: from its header line to the
    first line that is not a table row."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if TABLE_HEADER not in lines:
        return None
    start = lines.index(TABLE_HEADER)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end]) + "\n"


# ---------------------------------------------------------------- sending

def parse_reply(reply):
    """(status, {header: value}, body) of a raw HTTP reply; (None, {}, the
    bytes) when they are not an HTTP reply (or nothing came back)."""
    head, _, body = reply.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if not m:
        return None, {}, reply
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return int(m.group(1)), headers, body


def exchange(port, data, timeout):
    """Send data and read the reply until the server closes the connection
    (every request says Connection: close). Sending stops as soon as the
    server has answered or closed, as a client sending a large body would.
    Returns the reply bytes (b"" when the connection was closed without an
    answer); a server that neither answers nor closes within timeout raises
    AssertionError."""
    chunks = []
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        sent = 0
        try:
            while sent < len(data):
                readable, _, _ = select.select([s], [], [], 0)
                if readable:
                    break
                sent += s.send(data[sent:sent + 65536])
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout()
                s.settimeout(left)
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        except socket.timeout:
            raise AssertionError("no answer and no close within %ss (got %r)"
                                 % (timeout, b"".join(chunks)[:300]))
    return b"".join(chunks)


def redis_command(port, *args):
    """Send one command to Redis over a socket and return its reply: bytes
    for a bulk string, str for a status, int for an integer. (A redis-cli
    process per snapshot would take longer than the row itself.)"""
    args = [a if isinstance(a, bytes) else str(a).encode("utf-8") for a in args]
    command = b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(command)
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("Redis closed the connection: %r" % reply[:200])
            reply += chunk
            head, sep, rest = reply.partition(b"\r\n")
            if not sep:
                continue
            kind, value = head[:1], head[1:].decode("utf-8", "replace")
            if kind == b"+":
                return value
            if kind == b":":
                return int(value)
            if kind == b"$" and len(rest) >= int(value) + 2:
                return rest[:int(value)]
            if kind not in (b"$", b"+", b":"):
                raise AssertionError("Redis answered %r to %r" % (reply[:300], args[0]))


def redis_dump(port):
    """What RedisServer.dump() answers: {key: {field: value}}, every key."""
    return json.loads(redis_command(port, "EVAL", DUMP_SCRIPT, "0").decode("utf-8"))


def redis_restore(port, snapshot):
    """Make Redis hold exactly snapshot (hashes, as redis_dump gives them)."""
    redis_command(port, "FLUSHDB")
    for key, fields in snapshot.items():
        args = []
        for name, value in fields.items():
            args += [name, value]
        redis_command(port, "HSET", key, *args)


# ---------------------------------------------------------------- the tests

class BadInputTableTest(ServiceTestCase):
    """Every row of ROWS as one test (the methods are added below)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.token_batchy = None
        try:
            with open(os.path.join(cls.tmp, "secret.yaml"), "w") as f:
                f.write(SECRET_YAML)
            with open(os.path.join(cls.cfg_dir, "wf1.yaml"), "w") as f:
                f.write(WF1_YAML)
            for path in ("/load_cfg/wf1", "/open_batch/wf1", "/close_batch/wf1?step=job2"):
                r = cls.batchy.get(path)
                if r.status != 200:
                    raise AssertionError("set-up %s: %r" % (path, r))
            cls.token_batchy = Batchy(cls.redis.url, cls.cfg_dir, ("--token", TOKEN),
                                      workdir=os.path.join(cls.tmp, "token"))
            os.mkdir(cls.token_batchy.workdir)
            cls.token_batchy.start()
        except BaseException:
            cls._stop_token_batchy()
            cls._cleanup_class()
            raise

    @classmethod
    def _stop_token_batchy(cls):
        if cls.token_batchy:
            try:
                cls.token_batchy.stop_checked()
            finally:
                cls.token_batchy.kill()

    @classmethod
    def tearDownClass(cls):
        try:
            cls._stop_token_batchy()
        finally:
            super().tearDownClass()

    def put_cfg(self, send):
        path = os.path.join(self.cfg_dir, send.workflow + send.ext)
        if send.content == FIFO:
            if not os.path.exists(path):
                os.mkfifo(path)
        elif send.content == DIRECTORY:
            os.makedirs(path, exist_ok=True)
        else:
            with open(path, "wb") as f:
                f.write(send.content)

    def run_row(self, r):
        """Send the row's input; check the answer, Redis and batchy. Every
        problem found is reported at once, in one failure."""
        server = self.token_batchy if r.token else self.batchy
        if isinstance(r.send, Cfg):
            self.put_cfg(r.send)
        problems = []
        before = redis_dump(self.redis.port)
        try:
            reply = exchange(server.port, r.send.raw(), timeout=3 * SLOW)
        except AssertionError as e:
            reply = None
            problems.append(str(e))
        after = redis_dump(self.redis.port)
        if after != before:  # put it back, so that the next rows start from the same state
            redis_restore(self.redis.port, before)
            problems.append("Redis changed:\n  before %s\n  after  %s" % (
                json.dumps(before, sort_keys=True)[:1500], json.dumps(after, sort_keys=True)[:1500]))
        if "from_outside_the_cfg_dir" in json.dumps(after):
            problems.append("a file outside the cfg dir was loaded")
        if reply is not None:
            problems += self.answer_problems(r.answer, reply)
        if not server.running():
            problems.append("batchy exited with status %s" % server.proc.poll())
        else:
            try:
                index = server.get("/index", timeout=3 * SLOW)
                if index.status != 200:
                    problems.append("then /index answered %r" % (index,))
            except OSError as e:
                problems.append("then /index failed: %s" % e)
        if problems:
            self.fail("%s: %s\nexpected: %s\ngot: %r\n- %s" % (
                r.category, r.input, r.answer.markdown(),
                reply if reply is None else reply[:600], "\n- ".join(problems)))

    @staticmethod
    def answer_problems(answer, reply):
        status, headers, body = parse_reply(reply)
        if answer.kind == "closed":
            return [] if reply == b"" else ["expected the connection to close without an answer"]
        if status != answer.status:
            return ["status %s, expected %s" % (status, answer.status)]
        if answer.kind == "empty" and body:
            return ["a body, expected none"]
        if answer.kind != "json":
            return []
        if not headers.get("content-type", "").startswith("application/json"):
            return ["Content-Type %r, expected application/json" % headers.get("content-type")]
        try:
            doc = json.loads(body.decode("utf-8"))
        except ValueError as e:
            return ["the body is not JSON (%s)" % e]
        if not isinstance(doc, dict) or not isinstance(doc.get("error"), str):
            return ["the body is not {\"error\": \"...\"}"]
        if answer.fragment not in doc["error"]:
            return ["the error does not say %r" % answer.fragment]
        return []


def _add_row_tests():
    width = max(2, len(str(len(ROWS))))
    seen = set()
    for n, r in enumerate(ROWS, 1):
        if not re.match(r"^[a-z0-9_]+$", r.slug) or r.slug in seen:
            raise ValueError("row %d: slug %r must be unique [a-z0-9_]+" % (n, r.slug))
        seen.add(r.slug)

        def test(self, r=r):
            self.run_row(r)
        test.__name__ = "test_row_%0*d_%s" % (width, n, r.slug)
        test.__doc__ = "%s: %s -> %s" % (r.category, r.input, r.answer.markdown())
        setattr(BadInputTableTest, test.__name__, test)


_add_row_tests()


class ReadmeTableTest(unittest.TestCase):
    def test_readme_table_is_generated_from_the_rows(self):
        table = readme_table()
        self.assertIsNotNone(table, "tests/README.md has no line %r" % TABLE_HEADER)
        self.assertEqual(table, markdown_table(),
                         "tests/README.md differs from the rows; print the table with "
                         "python3 tests/integration/test_bad_input_table.py --markdown")

    def test_every_required_category_has_rows(self):
        categories = {r.category for r in ROWS}
        self.assertEqual(categories, {"workflow name", "step name", "path", "query string",
                                      "YAML file", "header", "method", "size", "operating",
                                      "waiting", "dashboard"})
        self.assertGreaterEqual(len(ROWS), 40)


if __name__ == "__main__":
    if "--markdown" in sys.argv[1:]:
        sys.stdout.write(markdown_table())
    else:
        unittest.main()
