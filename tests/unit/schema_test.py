#!/usr/bin/python3
"""Keeps schema/policy.schema.json, the parser and the golden corpus in step.

Usage: schema_test.py PATH/TO/ward

- every examples/*.json and tests/policies/valid/*.json is valid under the
  schema, passes `ward policy check` (exit 0), and `ward policy show` of it
  prints a policy that is itself valid under the schema and under ward;
- every tests/policies/invalid/*.json is rejected by the schema (or is not
  JSON at all), and `ward policy check` exits 123 printing exactly the lines
  of the golden file NAME.expected;
- every tests/policies/parser-only/*.json is accepted by the schema (it is
  something a JSON Schema cannot express: a contradiction, a duplicate key)
  and rejected by ward exactly as NAME.expected says.

Golden files hold what `ward policy check NAME.json` prints when run in the
file's own directory with HOME=/home/agent, USER=agent, TMPDIR=/tmp. To
regenerate one after an intended change of wording, run that command and
review the diff.

Runs with Debian's python3-jsonschema (/usr/bin/python3, not a pyenv one).
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import unittest

try:
    import jsonschema
except ImportError:
    sys.exit("schema_test.py: python3-jsonschema is missing (apt-get install python3-jsonschema; "
             "run with /usr/bin/python3)")

SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMA = os.path.join(SOURCE, "schema", "policy.schema.json")
CORPUS = os.path.join(SOURCE, "tests", "policies")
EXIT_POLICY = 123
WARD = None  # set from argv
ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/agent", "USER": "agent", "TMPDIR": "/tmp", "LANG": "C.UTF-8"}


def files(*parts):
    found = sorted(glob.glob(os.path.join(SOURCE, *parts)))
    if not found:
        raise AssertionError("no files match " + os.path.join(*parts))
    return found


def load_schema():
    with open(SCHEMA, encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def strip_comments(text):
    """The JSON of a policy that holds comments (`// ...`, `/* ... */`), which
    ward's parser allows: each comment becomes a space, strings untouched."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            out.append(" ")
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def schema_errors(validator, path):
    """The schema's complaints about a file; a file that is not JSON gets one."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.loads(strip_comments(f.read()))
    except (ValueError, UnicodeDecodeError) as e:
        return ["not JSON: %s" % e]
    return ["%s: %s" % ("/" + "/".join(str(p) for p in e.absolute_path), e.message)
            for e in validator.iter_errors(doc)]


def ward(args, cwd):
    return subprocess.run([WARD] + args, cwd=cwd, env=ENV, capture_output=True, text=True,
                          errors="replace", timeout=60)


def expected_lines(json_path):
    with open(json_path[:-len(".json")] + ".expected", encoding="utf-8") as f:
        return f.read()


class Schema(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = load_schema()

    def test_examples_and_valid_corpus_are_valid(self):
        for path in files("examples", "*.json") + files("tests", "policies", "valid", "*.json"):
            with self.subTest(path=os.path.relpath(path, SOURCE)):
                self.assertEqual(schema_errors(self.v, path), [])

    def test_invalid_corpus_is_rejected(self):
        for path in files("tests", "policies", "invalid", "*.json"):
            with self.subTest(path=os.path.relpath(path, SOURCE)):
                self.assertNotEqual(schema_errors(self.v, path), [], "the schema accepts it")

    def test_parser_only_corpus_is_beyond_the_schema(self):
        # If the schema learns to reject one of these, move it to invalid/.
        for path in files("tests", "policies", "parser-only", "*.json"):
            with self.subTest(path=os.path.relpath(path, SOURCE)):
                self.assertEqual(schema_errors(self.v, path), [])

    def test_schema_rejects_typos_at_every_level(self):
        # additionalProperties: false everywhere the parser reports unknown fields.
        for doc in [{"ward": 1, "x": 1}, {"ward": 1, "filesystem": {"x": 1}}, {"ward": 1, "process": {"x": 1}},
                    {"ward": 1, "process": {"env": {"x": 1}}}, {"ward": 1, "limits": {"x": 1}},
                    {"ward": 1, "enforcement": {"x": 1}}]:
            with self.subTest(doc=doc):
                self.assertFalse(self.v.is_valid(doc))


class WardCheck(unittest.TestCase):
    def test_examples_pass_from_a_directory_outside_tmp(self):
        # ${WORKSPACE} and ${CWD} are the working directory: the source tree.
        for path in files("examples", "*.json") + files("tests", "policies", "valid", "*.json"):
            with self.subTest(path=os.path.relpath(path, SOURCE)):
                r = ward(["policy", "check", path], cwd=SOURCE)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                # The only warnings allowed: a deny of a file the source
                # tree does not have (the examples deny ${WORKSPACE}/.env).
                lines = r.stdout.splitlines()
                for w in lines[:-1]:
                    self.assertRegex(w, r': warning: /filesystem/deny/\d+ ".*" matches nothing under the grant')
                self.assertEqual(lines[-1:], [path + ": ok"])

    def test_show_prints_a_valid_policy(self):
        v = load_schema()
        for path in files("examples", "*.json"):
            with self.subTest(path=os.path.relpath(path, SOURCE)):
                r = ward(["policy", "show", "--policy", path], cwd=SOURCE)
                self.assertEqual(r.returncode, 0, r.stderr)
                shown = json.loads(r.stdout)
                self.assertEqual([e.message for e in v.iter_errors(shown)], [])
                with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
                    f.write(r.stdout)
                    f.flush()
                    again = ward(["policy", "show", "--policy", f.name], cwd=SOURCE)
                    self.assertEqual(again.returncode, 0, again.stderr)
                    self.assertEqual(json.loads(again.stdout), shown, "show is not a fixed point")

    def check_golden(self, subdir):
        paths = files("tests", "policies", subdir, "*.json")
        for path in paths:
            name = os.path.basename(path)
            directory = os.path.dirname(path)
            with self.subTest(path=os.path.relpath(path, SOURCE)):
                want = expected_lines(path)
                self.assertTrue(want.strip(), "empty golden file")
                r = ward(["policy", "check", name], cwd=directory)
                self.assertEqual(r.returncode, EXIT_POLICY, r.stdout + r.stderr)
                self.assertEqual(r.stdout, want)
                # The same errors as JSON (which must itself be valid JSON).
                j = ward(["policy", "check", "--json", name], cwd=directory)
                self.assertEqual(j.returncode, EXIT_POLICY, j.stderr)
                report = json.loads(j.stdout)
                self.assertEqual(len(report), 1)
                self.assertFalse(report[0]["ok"])
                lines = ["%s: %s: %s\n" % (name, e["path"], e["reason"]) for e in report[0]["errors"]]
                self.assertEqual("".join(lines), want)
        # Every golden file belongs to a policy.
        for golden in files("tests", "policies", subdir, "*.expected"):
            self.assertIn(golden[:-len(".expected")] + ".json", paths)

    def test_invalid_corpus_matches_golden_output(self):
        self.check_golden("invalid")

    def test_parser_only_corpus_matches_golden_output(self):
        self.check_golden("parser-only")

    def test_policies_in_the_docs_are_valid(self):
        # Every ```json block of docs/policy.md that is a whole policy passes,
        # unless it is one of the invalid corpus (shown for its errors).
        import re
        with open(os.path.join(SOURCE, "docs", "policy.md"), encoding="utf-8") as f:
            blocks = re.findall(r"```json\n(.*?)```", f.read(), re.S)
        invalid = []
        for path in files("tests", "policies", "invalid", "*.json"):
            try:
                with open(path, encoding="utf-8") as f:
                    invalid.append(json.load(f))
            except ValueError:
                pass
        v = load_schema()
        checked = 0
        for i, block in enumerate(blocks):
            doc = json.loads(block)
            if "ward" not in doc or doc in invalid:
                continue
            with self.subTest(block=i), tempfile.NamedTemporaryFile("w", suffix=".json") as f:
                self.assertEqual([e.message for e in v.iter_errors(doc)], [])
                f.write(block)
                f.flush()
                r = ward(["policy", "check", f.name], cwd=SOURCE)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                checked += 1
        self.assertGreaterEqual(checked, 1)

    def test_several_files_at_once(self):
        good = os.path.join(SOURCE, "examples", "strict.json")
        bad = os.path.join(CORPUS, "invalid", "version-2.json")
        r = ward(["policy", "check", good, bad], cwd=SOURCE)
        self.assertEqual(r.returncode, EXIT_POLICY)
        lines = [l for l in r.stdout.splitlines() if ": warning: " not in l]  # the .env deny, see above
        self.assertEqual(lines[0], good + ": ok")
        self.assertTrue(lines[1].startswith(bad + ": /ward: unsupported format version 2"))


if __name__ == "__main__":
    if len(sys.argv) < 2 or not os.access(sys.argv[1], os.X_OK):
        sys.exit("usage: schema_test.py PATH/TO/ward")
    WARD = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
