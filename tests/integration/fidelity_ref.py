"""The original service's view of generated workflow files, for
test_fidelity.py: run by Debian's /usr/bin/python3, whose python3-yaml is
PyYAML, the loader the original used, and whose json module is the writer
it used.

    /usr/bin/python3 fidelity_ref.py SEED FILES STEPS

prints one JSON document: a list of FILES {"yaml": text, "steps": {step:
what the original wrote to Redis for that step after load_cfg}}. Values
and keys are drawn from every kind PyYAML resolves (strings with any
character, integers in each base, floats in each form, booleans and nulls
as YAML 1.1 spells them, nested mappings and sequences), except what the
original itself could not store (dates, whose json.dumps fails) and what
Batchy refuses on purpose (README: integers beyond 2^53, .inf, .nan).
"""
import json
import random
import sys

import yaml

SPECIAL = {"status", "from_date", "to_date", "batch_start", "batch_end", "batch_id",
           "error_message", "trunc_start", "reprocess_hours", "infa_section"}


def quoted(s):
    """s as a YAML double-quoted scalar: escapes for what YAML may not hold
    raw (control characters, DEL, C1, line and paragraph separators, BOM)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif o < 0x20 or 0x7F <= o <= 0x9F or o in (0x2028, 0x2029, 0xFEFF):
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


ALPHABET = ("abcxyz ABC019_-.:/,#&*!|>'%@`" "\t\n\x01\x1f\x7f\"\\"
            "\u00e9\u00fc\u00df\u0394\u0416\u05d0\u0627\u4e2d\u65e5\u672c\u20ac\u2028\u00a0"
            "\U0001F600\U0001F680\U00010348\U0010FFFD\uFFFD\u0085")


def a_string(rng):
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))


def a_float(rng):
    """A float scalar in one of the forms PyYAML resolves as a float."""
    kind = rng.randrange(9)
    if kind == 0:
        return "%d.0" % rng.randint(-10**6, 10**6)
    if kind == 1:
        return "%d.%de+%d" % (rng.randint(1, 9), rng.randint(0, 99), rng.randint(0, 30))
    if kind == 2:
        return "%d.%de-%d" % (rng.randint(1, 9), rng.randint(0, 99), rng.randint(1, 30))
    if kind == 3:
        return repr(rng.uniform(-1e6, 1e6))
    if kind == 4:
        return repr(rng.random() * 10 ** rng.randint(-3, 15))
    if kind == 5:
        return rng.choice(["0.1", "0.30000000000000004", "1.5e+3", "1.0", "-0.0", "0.0",
                           ".5", "-2.", "1_000.5", "190:20:30.15", "6.8523015e+5",
                           "1e+16", "123456789012345678.0", "0.0001", "0.00001"])
    if kind == 6:  # repr in exponent form: "1e-07" is a float for Python, a
        return repr(rng.random() * 10 ** -rng.randint(5, 12))  # string for PyYAML
    if kind == 7:
        return "%d.%d" % (rng.randint(0, 10**9), rng.randint(0, 10**9))
    return repr(float(rng.randint(1, 10**15)))


def an_int(rng):
    kind = rng.randrange(7)
    n = rng.randint(0, 10**rng.randint(1, 15))
    if kind == 0:
        return str(rng.choice([n, -n]))
    if kind == 1:
        return "0x%X" % n if rng.random() < 0.5 else "0x%x" % n
    if kind == 2:
        return "0%o" % (n or 1)
    if kind == 3:
        return "0b" + bin(n)[2:]
    if kind == 4:
        return "{:_}".format(n)
    if kind == 5:
        return "%d:%02d" % (rng.randint(1, 99), rng.randint(0, 59))
    return rng.choice(["0", "+7", "-0", "9007199254740992", "-9007199254740992", "010", "0o7"])


WORDS = ["yes", "No", "ON", "off", "True", "FALSE", "y", "n", "~", "null", "Null", "NULL"]


def a_scalar(rng):
    kind = rng.randrange(5)
    if kind == 0:
        return quoted(a_string(rng))
    if kind == 1:
        return a_float(rng)
    if kind == 2:
        return an_int(rng)
    if kind == 3:
        return rng.choice(WORDS)
    return rng.choice(["plain text", "2026", "a:b", "1e3", "0o17", "12:30:61", ".inf_not"])


def a_key(rng):
    kind = rng.randrange(4)
    if kind == 0:
        return quoted("k" + a_string(rng))
    if kind == 1:
        return rng.choice(WORDS)
    if kind == 2:
        return an_int(rng)
    return a_float(rng)


def a_value(rng, depth):
    if depth >= 3 or rng.random() < 0.6:
        return a_scalar(rng)
    if rng.random() < 0.5:
        return "[" + ", ".join(a_value(rng, depth + 1) for _ in range(rng.randint(0, 4))) + "]"
    return a_mapping(rng, depth + 1)


def a_mapping(rng, depth, top=False):
    """A flow mapping whose keys stay distinct once PyYAML resolves them and
    json.dumps writes them (the original would silently keep one of two;
    Batchy refuses them, which test_cfgload checks)."""
    members, seen = [], set()
    for _ in range(rng.randint(0, 6)):
        key = a_key(rng)
        resolved = yaml.safe_load("{%s: 0}" % key)
        (k,) = resolved.keys()
        written = json.dumps({k: 0})
        ident = (type(k) in (bool, int, float)) and float(k)
        if written in seen or (ident is not False and ("n", ident) in seen) \
                or (top and json.loads(written).popitem()[0] in SPECIAL):
            continue
        seen.add(written)
        if ident is not False:
            seen.add(("n", ident))
        members.append("%s: %s" % (key, a_value(rng, depth)))
    return "{" + ", ".join(members) + "}"


def main():
    seed, files, steps = (int(a) for a in sys.argv[1:4])
    rng = random.Random(seed)
    out = []
    for _ in range(files):
        lines = []
        for s in range(steps):
            lines.append("s%d: %s" % (s, a_mapping(rng, 0, top=True)))
        text = "\n".join(lines) + "\n"
        doc = yaml.safe_load(text)
        expected = {}
        for step, params in doc.items():
            params = dict(params or {})
            params.setdefault("status", "new")
            expected[step] = json.dumps(params)
        out.append({"yaml": text, "steps": expected})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
