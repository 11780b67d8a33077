// Unit tests of ParsePolicy, LoadProfile, LoadPolicyFile and PolicyToJson.
//
// Every test uses a fixed PolicyVars, never the real environment, and asserts
// the JSON pointer and the key words of each issue, so that a parser that
// reports the wrong field, or reports nothing, fails.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <vector>

#include "ward/policy.h"

namespace ward {
namespace {

using json = nlohmann::json;
using Strings = std::vector<std::string>;

// CWD and WORKSPACE differ so that a test can tell which one was expanded.
PolicyVars Vars() {
  PolicyVars v;
  v.values = {{"HOME", "/home/agent"},
              {"CWD", "/work/proj"},
              {"WORKSPACE", "/work/ws"},
              {"USER", "agent"},
              {"TMPDIR", "/tmp"}};
  return v;
}

PolicyLoad Parse(const std::string& text, const PolicyVars& vars = Vars()) { return ParsePolicy(text, vars); }

std::string Describe(const PolicyLoad& load) {
  return load.issues.empty() ? "(no issues)\n" : load.FormatIssues("policy");
}

// Parses a document that must be valid.
Policy Valid(const std::string& text, const PolicyVars& vars = Vars()) {
  PolicyLoad load = Parse(text, vars);
  EXPECT_TRUE(load.ok()) << text << "\n" << Describe(load);
  return load.policy.value_or(Policy{});
}

Strings IssuePaths(const PolicyLoad& load) {
  Strings out;
  for (const auto& i : load.issues) out.push_back(i.path);
  return out;
}

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Expects exactly one issue, at `path`, whose reason contains every word.
void ExpectOneIssue(const std::string& text, const std::string& path, std::initializer_list<std::string> words,
                    const PolicyVars& vars = Vars()) {
  PolicyLoad load = Parse(text, vars);
  EXPECT_FALSE(load.ok());
  EXPECT_FALSE(load.policy.has_value()) << "a policy with issues must not be returned";
  ASSERT_EQ(load.issues.size(), 1u) << text << "\n" << Describe(load);
  EXPECT_EQ(load.issues[0].path, path) << text << "\n" << Describe(load);
  for (const auto& w : words) {
    EXPECT_TRUE(Contains(load.issues[0].reason, w))
        << "reason lacks \"" << w << "\": " << load.issues[0].reason << "\nin: " << text;
  }
}

// A document with `fragment` spliced in at the top level.
std::string Doc(const std::string& fragment) { return R"({"ward": 1, )" + fragment + "}"; }

// ---------------------------------------------------------------------------
// Valid documents: every field

TEST(PolicyParse, MinimalDocumentHasSafeDefaults) {
  Policy p = Valid(R"({"ward": 1})");
  EXPECT_EQ(p.version, 1);
  EXPECT_FALSE(p.extends.has_value());
  EXPECT_TRUE(p.filesystem.read.empty());
  EXPECT_TRUE(p.filesystem.write.empty());
  EXPECT_TRUE(p.filesystem.deny.empty());
  EXPECT_TRUE(p.filesystem.unix_endpoints.empty());
  EXPECT_TRUE(p.filesystem.private_tmp);
  EXPECT_TRUE(p.filesystem.system);
  EXPECT_TRUE(p.process.argv.empty());
  EXPECT_FALSE(p.process.cwd.has_value());
  EXPECT_TRUE(p.process.env.inherit.empty());
  EXPECT_TRUE(p.process.env.set.empty());
  EXPECT_FALSE(p.process.timeout_ms.has_value());
  EXPECT_FALSE(p.process.shell);
  EXPECT_FALSE(p.limits.memory_mib.has_value());
  EXPECT_FALSE(p.limits.pids.has_value());
  EXPECT_FALSE(p.limits.cpus.has_value());
  EXPECT_FALSE(p.limits.cpu_seconds.has_value());
  EXPECT_FALSE(p.limits.open_files.has_value());
  EXPECT_FALSE(p.limits.file_size_mib.has_value());
  EXPECT_EQ(p.network, NetworkMode::kNone);
  EXPECT_EQ(p.enforcement.landlock, Requirement::kRequired);
}

TEST(PolicyParse, EveryFieldIsRead) {
  Policy p = Valid(R"({
    "ward": 1,
    "description": "all fields",
    "filesystem": {
      "read": ["/usr/share", "${HOME}/docs"],
      "write": ["${WORKSPACE}", "${CWD}/out"],
      "deny": ["${CWD}/.env", "${HOME}/.ssh"],
      "unix": ["/run/user/1000/bus", "${HOME}/.docker/run/docker.sock"],
      "tmp": "none",
      "system": false
    },
    "process": {
      "argv": ["python3", "-c", "pass"],
      "cwd": "${WORKSPACE}",
      "env": {"inherit": ["PATH", "LANG"], "set": {"CI": "1", "EMPTY": ""}},
      "timeoutMs": 30000,
      "shell": true
    },
    "limits": {"memoryMiB": 512, "pids": 64, "cpus": 1.5, "cpuSeconds": 60, "openFiles": 256, "fileSizeMiB": 100},
    "network": "host",
    "enforcement": {"landlock": "best-effort"},
    "audit": {"agent": "ci-bot", "trail": "best-effort", "files": "denied"}
  })");
  EXPECT_EQ(p.filesystem.read, (Strings{"/usr/share", "/home/agent/docs"}));
  EXPECT_EQ(p.filesystem.write, (Strings{"/work/ws", "/work/proj/out"}));
  EXPECT_EQ(p.filesystem.deny, (Strings{"/work/proj/.env", "/home/agent/.ssh"}));
  EXPECT_EQ(p.filesystem.unix_endpoints, (Strings{"/run/user/1000/bus", "/home/agent/.docker/run/docker.sock"}));
  EXPECT_FALSE(p.filesystem.private_tmp);
  EXPECT_FALSE(p.filesystem.system);
  EXPECT_EQ(p.process.argv, (Strings{"python3", "-c", "pass"}));
  EXPECT_EQ(p.process.cwd, "/work/ws");
  EXPECT_EQ(p.process.env.inherit, (Strings{"PATH", "LANG"}));
  EXPECT_EQ(p.process.env.set, (std::map<std::string, std::string>{{"CI", "1"}, {"EMPTY", ""}}));
  EXPECT_EQ(p.process.timeout_ms, 30000);
  EXPECT_TRUE(p.process.shell);
  EXPECT_EQ(p.limits.memory_mib, 512);
  EXPECT_EQ(p.limits.pids, 64);
  EXPECT_EQ(p.limits.cpus, 1.5);
  EXPECT_EQ(p.limits.cpu_seconds, 60);
  EXPECT_EQ(p.limits.open_files, 256);
  EXPECT_EQ(p.limits.file_size_mib, 100);
  EXPECT_EQ(p.network, NetworkMode::kHost);
  EXPECT_EQ(p.enforcement.landlock, Requirement::kBestEffort);
}

TEST(PolicyParse, IssueExampleFromTheFormatSpecification) {
  Policy p = Valid(R"({"ward":1, "extends":"workspace-write",
    "filesystem":{"read":["/usr/share"],"write":["${CWD}"],"deny":["${CWD}/.env","${HOME}/.ssh"]},
    "process":{"env":{"inherit":["PATH","LANG"],"set":{"CI":"1"}},"timeoutMs":30000},
    "limits":{"memoryMiB":512,"pids":64}, "network":"none"})");
  EXPECT_EQ(p.extends, "workspace-write");
  EXPECT_EQ(p.filesystem.read, (Strings{"/usr/share"}));
  EXPECT_EQ(p.filesystem.write, (Strings{"/work/ws", "/work/proj"}));
  EXPECT_EQ(p.filesystem.deny, (Strings{"/work/proj/.env", "/home/agent/.ssh"}));
  EXPECT_EQ(p.process.env.set.at("CI"), "1");
  EXPECT_EQ(p.process.timeout_ms, 30000);
  EXPECT_EQ(p.limits.memory_mib, 512);
  EXPECT_EQ(p.limits.pids, 64);
  EXPECT_EQ(p.network, NetworkMode::kNone);
}

TEST(PolicyParse, ExplicitDefaultsEqualOmittedOnes) {
  Policy p = Valid(R"({"ward": 1, "filesystem": {"tmp": "private", "system": true},
                       "process": {"shell": false}, "network": "none",
                       "enforcement": {"landlock": "required"}})");
  EXPECT_TRUE(p.filesystem.private_tmp);
  EXPECT_TRUE(p.filesystem.system);
  EXPECT_FALSE(p.process.shell);
  EXPECT_EQ(p.network, NetworkMode::kNone);
  EXPECT_EQ(p.enforcement.landlock, Requirement::kRequired);
}

TEST(PolicyParse, EmptyListsAndObjectsAreValid) {
  Policy p = Valid(R"({"ward": 1, "filesystem": {"read": [], "write": [], "deny": []},
                       "process": {"env": {"inherit": [], "set": {}}}, "limits": {}, "enforcement": {}})");
  EXPECT_TRUE(p.filesystem.read.empty());
  EXPECT_TRUE(p.process.env.set.empty());
}

TEST(PolicyParse, PathsAreNormalized) {
  Policy p = Valid(Doc(R"("filesystem": {"read": ["/usr//share/./doc/", "//srv"]}, "process": {"cwd": "/work//ws/"})"));
  EXPECT_EQ(p.filesystem.read, (Strings{"/usr/share/doc", "/srv"}));
  EXPECT_EQ(p.process.cwd, "/work/ws");
}

TEST(PolicyParse, PathsThatOnlyResembleProcOrDevAreAccepted) {
  Policy p = Valid(Doc(R"("filesystem": {"read": ["/procfs", "/devices", "/srv/proc", "/home/dev"]})"));
  EXPECT_EQ(p.filesystem.read, (Strings{"/procfs", "/devices", "/srv/proc", "/home/dev"}));
}

TEST(PolicyParse, DenyingTheRootIsAccepted) {
  // Least specific of all rules: every grant beneath it wins (a no-op).
  Policy p = Valid(Doc(R"("filesystem": {"deny": ["/"]})"));
  EXPECT_EQ(p.filesystem.deny, (Strings{"/"}));
}

TEST(PolicyParse, IntegralNumbersWrittenAsFloatsAreIntegers) {
  // JSON Schema counts 512.0 as an integer; the parser agrees.
  Policy p = Valid(R"({"ward": 1.0, "limits": {"memoryMiB": 512.0, "pids": 6.4e1}})");
  EXPECT_EQ(p.limits.memory_mib, 512);
  EXPECT_EQ(p.limits.pids, 64);
}

TEST(PolicyParse, CpusAcceptsIntegersAndFractions) {
  EXPECT_EQ(Valid(Doc(R"("limits": {"cpus": 2})")).limits.cpus, 2.0);
  EXPECT_EQ(Valid(Doc(R"("limits": {"cpus": 0.25})")).limits.cpus, 0.25);
}

TEST(PolicyParse, EnvValuesMayHoldAnything) {
  Policy p = Valid(Doc(R"("process": {"env": {"set": {"A": "x=y z", "_B2": "${HOME}:${USER}", "C": "$HOME"}}})"));
  EXPECT_EQ(p.process.env.set.at("A"), "x=y z");
  EXPECT_EQ(p.process.env.set.at("_B2"), "/home/agent:agent");
  EXPECT_EQ(p.process.env.set.at("C"), "$HOME");
}

// ---------------------------------------------------------------------------
// Variables

TEST(PolicyVariables, EveryVariableExpands) {
  Policy p = Valid(Doc(R"("process": {"argv": ["${HOME}", "${CWD}", "${WORKSPACE}", "${USER}", "${TMPDIR}"]})"));
  EXPECT_EQ(p.process.argv, (Strings{"/home/agent", "/work/proj", "/work/ws", "agent", "/tmp"}));
}

TEST(PolicyVariables, SeveralInOneStringAndAroundText) {
  Policy p = Valid(Doc(R"("filesystem": {"read": ["${HOME}/data/${USER}-${USER}/x"]})"));
  EXPECT_EQ(p.filesystem.read, (Strings{"/home/agent/data/agent-agent/x"}));
}

TEST(PolicyVariables, DollarWithoutBraceIsLiteral) {
  Policy p = Valid(Doc(R"("filesystem": {"read": ["/srv/$HOME", "/srv/a$", "/srv/$$", "/srv/$}"]})"));
  EXPECT_EQ(p.filesystem.read, (Strings{"/srv/$HOME", "/srv/a$", "/srv/$$", "/srv/$}"}));
}

TEST(PolicyVariables, ValuesAreNotExpandedTwice) {
  PolicyVars v = Vars();
  v.values["HOME"] = "/home/${USER}";
  Policy p = Valid(Doc(R"("filesystem": {"read": ["${HOME}"]})"), v);
  EXPECT_EQ(p.filesystem.read, (Strings{"/home/${USER}"}));
}

TEST(PolicyVariables, ExpansionResultIsNormalized) {
  PolicyVars v = Vars();
  v.values["HOME"] = std::string(1, '/');  // (not = "/": a g++ 12 -Wrestrict false positive)
  Policy p = Valid(Doc(R"("filesystem": {"deny": ["${HOME}/.ssh"]})"), v);
  EXPECT_EQ(p.filesystem.deny, (Strings{"/.ssh"}));
}

TEST(PolicyVariables, UnknownVariable) {
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["/srv", "${NOPE}/x"]})"), "/filesystem/read/1",
                 {"unknown variable ${NOPE}", "known: CWD, HOME, TMPDIR, USER, WORKSPACE"});
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["${home}"]})"), "/filesystem/read/0", {"unknown variable ${home}"});
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["${}"]})"), "/filesystem/read/0", {"unknown variable ${}"});
  ExpectOneIssue(Doc(R"("process": {"env": {"set": {"X": "${PATH}"}}})"), "/process/env/set/X",
                 {"unknown variable ${PATH}"});
  ExpectOneIssue(Doc(R"("process": {"argv": ["sh", "${SHELL}"]})"), "/process/argv/1", {"unknown variable ${SHELL}"});
  ExpectOneIssue(Doc(R"("process": {"cwd": "${OLDPWD}"})"), "/process/cwd", {"unknown variable ${OLDPWD}"});
}

TEST(PolicyVariables, UnterminatedReference) {
  ExpectOneIssue(Doc(R"("filesystem": {"write": ["${HOME/x"]})"), "/filesystem/write/0",
                 {"unterminated variable reference", "\"${HOME/x\""});
  ExpectOneIssue(Doc(R"("filesystem": {"deny": ["/x/${"]})"), "/filesystem/deny/0", {"unterminated"});
  ExpectOneIssue(Doc(R"("process": {"env": {"set": {"A": "${HOME}${"}}})"), "/process/env/set/A", {"unterminated"});
}

TEST(PolicyVariables, ExpansionToARelativePathIsRejected) {
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["${USER}/x"]})"), "/filesystem/read/0", {"relative", "agent/x"});
}

TEST(PolicyVariables, MissingVariableInTheVarsIsUnknown) {
  PolicyVars v = Vars();
  v.values.erase("WORKSPACE");
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["${WORKSPACE}"]})"), "/filesystem/read/0",
                 {"unknown variable ${WORKSPACE}", "known: CWD, HOME, TMPDIR, USER)"}, v);
}

TEST(PolicyVariables, EnvNamesAreNotExpanded) {
  ExpectOneIssue(Doc(R"("process": {"env": {"inherit": ["${USER}"]}})"), "/process/env/inherit/0",
                 {"not a valid variable name"});
}

TEST(PolicyVariables, NonUtf8ValuesDoNotBreakMessagesOrOutput) {
  PolicyVars v = Vars();
  v.values["HOME"] = "/home/\xff\xfe";
  // A valid policy: the path keeps its bytes; the JSON output replaces them.
  Policy p = Valid(Doc(R"("filesystem": {"read": ["${HOME}"]})"), v);
  EXPECT_EQ(p.filesystem.read, (Strings{"/home/\xff\xfe"}));
  std::string out;
  ASSERT_NO_THROW(out = PolicyToJson(p));
  EXPECT_TRUE(Contains(out, "/home/\xef\xbf\xbd\xef\xbf\xbd")) << out;
  // An issue quoting such a value is valid UTF-8, so that it can be printed as JSON.
  PolicyLoad load = Parse(Doc(R"("filesystem": {"read": ["${HOME}", "${HOME}"]})"), v);
  ASSERT_EQ(load.issues.size(), 1u) << Describe(load);
  EXPECT_TRUE(Contains(load.issues[0].reason, "listed twice"));
  EXPECT_NO_THROW(json(load.issues[0].reason).dump());
}

// ---------------------------------------------------------------------------
// Unknown fields, at every level

TEST(PolicyUnknownFields, AtEveryLevel) {
  ExpectOneIssue(Doc(R"("netwrk": "none")"), "/netwrk",
                 {"unknown field", "ward, extends, filesystem, process, limits, network, enforcement, audit, description"});
  ExpectOneIssue(Doc(R"("filesystem": {"reed": []})"), "/filesystem/reed",
                 {"unknown field", "read, write, deny, unix, tmp, home, system"});
  ExpectOneIssue(Doc(R"("process": {"timeout": 5})"), "/process/timeout",
                 {"unknown field", "argv, cwd, env, timeoutMs, shell"});
  ExpectOneIssue(Doc(R"("process": {"env": {"inherits": []}})"), "/process/env/inherits",
                 {"unknown field", "inherit, set"});
  ExpectOneIssue(Doc(R"("limits": {"memoryMB": 5})"), "/limits/memoryMB",
                 {"unknown field", "memoryMiB, pids, cpus, cpuSeconds, openFiles, fileSizeMiB, tmpfsMiB"});
  ExpectOneIssue(Doc(R"("enforcement": {"seccomp": "off"})"), "/enforcement/seccomp", {"unknown field", "landlock"});
}

TEST(PolicyUnknownFields, FieldNamesAreCaseSensitive) {
  ExpectOneIssue(Doc(R"("limits": {"memorymib": 512})"), "/limits/memorymib", {"unknown field"});
  ExpectOneIssue(R"({"Ward": 1, "ward": 1})", "/Ward", {"unknown field"});
}

TEST(PolicyUnknownFields, PointerEscapesSlashAndTilde) {
  ExpectOneIssue(Doc(R"("a/b~c": 1)"), "/a~1b~0c", {"unknown field"});
  ExpectOneIssue(Doc(R"("filesystem": {"~": 1})"), "/filesystem/~0", {"unknown field"});
}

TEST(PolicyUnknownFields, EnvSetTakesAnyValidName) {
  Policy p = Valid(Doc(R"("process": {"env": {"set": {"filesystem": "x", "reed": "y"}}})"));
  EXPECT_EQ(p.process.env.set.size(), 2u);
}

// ---------------------------------------------------------------------------
// Wrong types

TEST(PolicyTypes, DocumentMustBeAnObject) {
  ExpectOneIssue("[]", "/", {"must be a JSON object", "an array"});
  ExpectOneIssue("null", "/", {"must be a JSON object", "null"});
  ExpectOneIssue("\"ward\"", "/", {"must be a JSON object", "a string"});
  ExpectOneIssue("1", "/", {"must be a JSON object", "an integer"});
}

TEST(PolicyTypes, Sections) {
  ExpectOneIssue(Doc(R"("filesystem": [])"), "/filesystem", {"must be an object", "got an array"});
  ExpectOneIssue(Doc(R"("process": "ls")"), "/process", {"must be an object", "got a string"});
  ExpectOneIssue(Doc(R"("process": {"env": ["PATH"]})"), "/process/env", {"must be an object", "got an array"});
  ExpectOneIssue(Doc(R"("process": {"env": {"set": ["A=1"]}})"), "/process/env/set", {"must be an object"});
  ExpectOneIssue(Doc(R"("limits": 512)"), "/limits", {"must be an object", "got an integer"});
  ExpectOneIssue(Doc(R"("enforcement": "best-effort")"), "/enforcement", {"must be an object", "got a string"});
}

TEST(PolicyTypes, Filesystem) {
  ExpectOneIssue(Doc(R"("filesystem": {"read": "/usr"})"), "/filesystem/read",
                 {"must be an array of absolute paths", "got a string"});
  ExpectOneIssue(Doc(R"("filesystem": {"write": {}})"), "/filesystem/write", {"must be an array", "got an object"});
  ExpectOneIssue(Doc(R"("filesystem": {"deny": null})"), "/filesystem/deny", {"must be an array", "got null"});
  ExpectOneIssue(Doc(R"("filesystem": {"unix": "/run/user/1000/bus"})"), "/filesystem/unix",
                 {"must be an array of absolute paths", "got a string"});
  ExpectOneIssue(Doc(R"("filesystem": {"unix": ["/run/a.sock", true]})"), "/filesystem/unix/1",
                 {"must be a string", "got a boolean"});
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["/a", 7]})"), "/filesystem/read/1",
                 {"must be a string", "got an integer"});
  ExpectOneIssue(Doc(R"("filesystem": {"read": [["/a"]]})"), "/filesystem/read/0", {"must be a string", "an array"});
  ExpectOneIssue(Doc(R"("filesystem": {"tmp": true})"), "/filesystem/tmp", {"\"private\"", "\"none\"", "got true"});
  ExpectOneIssue(Doc(R"("filesystem": {"tmp": "shared"})"), "/filesystem/tmp", {"got \"shared\""});
  ExpectOneIssue(Doc(R"("filesystem": {"system": "yes"})"), "/filesystem/system",
                 {"must be true or false", "got a string"});
  ExpectOneIssue(Doc(R"("filesystem": {"system": 1})"), "/filesystem/system", {"must be true or false"});
}

TEST(PolicyTypes, Process) {
  ExpectOneIssue(Doc(R"("process": {"argv": "ls -l"})"), "/process/argv", {"non-empty array of strings"});
  ExpectOneIssue(Doc(R"("process": {"argv": []})"), "/process/argv", {"non-empty array of strings"});
  ExpectOneIssue(Doc(R"("process": {"argv": ["ls", 1]})"), "/process/argv/1", {"must be a string", "an integer"});
  ExpectOneIssue(Doc(R"("process": {"argv": [""]})"), "/process/argv/0", {"program must not be empty"});
  ExpectOneIssue(Doc(R"("process": {"cwd": 5})"), "/process/cwd", {"must be a string", "an integer"});
  ExpectOneIssue(Doc(R"("process": {"env": {"inherit": "PATH"}})"), "/process/env/inherit",
                 {"must be an array of variable names", "a string"});
  ExpectOneIssue(Doc(R"("process": {"env": {"inherit": [null]}})"), "/process/env/inherit/0",
                 {"must be a string", "null"});
  ExpectOneIssue(Doc(R"("process": {"env": {"set": {"A": 1}}})"), "/process/env/set/A",
                 {"must be a string", "an integer"});
  ExpectOneIssue(Doc(R"("process": {"env": {"set": {"A": true}}})"), "/process/env/set/A", {"a boolean"});
  ExpectOneIssue(Doc(R"("process": {"timeoutMs": "30s"})"), "/process/timeoutMs",
                 {"must be an integer (milliseconds)", "a string"});
  ExpectOneIssue(Doc(R"("process": {"timeoutMs": 1.5})"), "/process/timeoutMs", {"must be an integer", "1.5"});
  ExpectOneIssue(Doc(R"("process": {"shell": "sh"})"), "/process/shell", {"must be true or false"});
}

TEST(PolicyTypes, EmptyProgramIsOnlyAnIssueForArgvZero) {
  // An empty later argument is legitimate (e.g. `printf ""`).
  EXPECT_EQ(Valid(Doc(R"("process": {"argv": ["printf", ""]})")).process.argv, (Strings{"printf", ""}));
  // A bad argv[0] does not shift the index of the next one.
  ExpectOneIssue(Doc(R"("process": {"argv": [1, ""]})"), "/process/argv/0", {"must be a string"});
}

TEST(PolicyTypes, LimitsNetworkEnforcementTopLevel) {
  ExpectOneIssue(Doc(R"("limits": {"memoryMiB": "512"})"), "/limits/memoryMiB", {"must be an integer (MiB)", "a string"});
  ExpectOneIssue(Doc(R"("limits": {"pids": true})"), "/limits/pids", {"must be an integer", "a boolean"});
  ExpectOneIssue(Doc(R"("limits": {"cpus": "1"})"), "/limits/cpus", {"must be a number of cores", "a string"});
  ExpectOneIssue(Doc(R"("limits": {"cpuSeconds": null})"), "/limits/cpuSeconds", {"must be an integer", "null"});
  ExpectOneIssue(Doc(R"("limits": {"openFiles": [1]})"), "/limits/openFiles", {"must be an integer", "an array"});
  ExpectOneIssue(Doc(R"("limits": {"fileSizeMiB": 0.5})"), "/limits/fileSizeMiB", {"must be an integer", "0.5"});
  ExpectOneIssue(Doc(R"("enforcement": {"landlock": true})"), "/enforcement/landlock",
                 {"\"required\" or \"best-effort\"", "got true"});
  ExpectOneIssue(Doc(R"("enforcement": {"landlock": "optional"})"), "/enforcement/landlock", {"got \"optional\""});
  ExpectOneIssue(Doc(R"("description": 3)"), "/description", {"must be a string", "an integer"});
  ExpectOneIssue(Doc(R"("extends": ["minimal"])"), "/extends", {"must be a string naming a built-in profile", "an array"});
}

// ---------------------------------------------------------------------------
// Paths

TEST(PolicyPaths, RelativeEmptyNulDotDot) {
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["usr/share"]})"), "/filesystem/read/0",
                 {"\"usr/share\" is relative", "${CWD}"});
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["./x"]})"), "/filesystem/read/0", {"relative"});
  ExpectOneIssue(Doc(R"("filesystem": {"write": [""]})"), "/filesystem/write/0", {"path is empty"});
  ExpectOneIssue(Doc(R"("filesystem": {"deny": ["/a\u0000b"]})"), "/filesystem/deny/0", {"NUL"});
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["/srv/../etc"]})"), "/filesystem/read/0", {"\"..\""});
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["/srv/.."]})"), "/filesystem/read/0", {"\"..\""});
  ExpectOneIssue(Doc(R"("filesystem": {"write": ["${HOME}/../root"]})"), "/filesystem/write/0", {"\"..\""});
  ExpectOneIssue(Doc(R"("process": {"cwd": "src"})"), "/process/cwd", {"relative"});
  ExpectOneIssue(Doc(R"("process": {"cwd": ""})"), "/process/cwd", {"path is empty"});
  ExpectOneIssue(Doc(R"("process": {"cwd": "/a/../b"})"), "/process/cwd", {"\"..\""});
}

TEST(PolicyPaths, NulIsRejectedOutsidePathsToo) {
  ExpectOneIssue(Doc(R"("process": {"argv": ["ls\u0000"]})"), "/process/argv/0", {"NUL"});
  ExpectOneIssue(Doc(R"("process": {"env": {"set": {"A": "x\u0000y"}}})"), "/process/env/set/A", {"NUL"});
  ExpectOneIssue(Doc(R"("process": {"env": {"inherit": ["PA\u0000TH"]}})"), "/process/env/inherit/0", {"NUL"});
}

TEST(PolicyPaths, ProcAndDevCannotBeGranted) {
  for (const char* field : {"read", "write"}) {
    for (const char* path : {"/proc", "/proc/1/root", "/dev", "/dev/shm", "//proc/", "/./dev/null"}) {
      SCOPED_TRACE(std::string(field) + " " + path);
      ExpectOneIssue(Doc(std::string(R"("filesystem": {")") + field + R"(": [")" + path + R"("]})"),
                     std::string("/filesystem/") + field + "/0",
                     {"provided by the sandbox itself", "cannot be granted"});
    }
  }
  ExpectOneIssue(Doc(R"("filesystem": {"deny": ["/proc/kcore"]})"), "/filesystem/deny/0",
                 {"provided by the sandbox itself", "cannot be denied"});
}

// filesystem.unix entries are validated as grants are.
TEST(PolicyPaths, UnixEntriesAreCheckedLikeGrants) {
  ExpectOneIssue(Doc(R"("filesystem": {"unix": ["agent.sock"]})"), "/filesystem/unix/0",
                 {"\"agent.sock\" is relative", "${CWD}"});
  ExpectOneIssue(Doc(R"("filesystem": {"unix": ["/run/../x.sock"]})"), "/filesystem/unix/0", {"\"..\""});
  ExpectOneIssue(Doc(R"("filesystem": {"unix": [""]})"), "/filesystem/unix/0", {"path is empty"});
  ExpectOneIssue(Doc(R"("filesystem": {"unix": ["${XDG_RUNTIME_DIR}/bus"]})"), "/filesystem/unix/0",
                 {"unknown variable ${XDG_RUNTIME_DIR}"});
  ExpectOneIssue(Doc(R"("filesystem": {"unix": ["/dev/log"]})"), "/filesystem/unix/0",
                 {"provided by the sandbox itself", "cannot be granted"});
  ExpectOneIssue(Doc(R"("filesystem": {"unix": ["/"]})"), "/filesystem/unix/0", {"whole host"});
  Policy p = Valid(Doc(R"("filesystem": {"unix": ["${HOME}//.ssh-agent/sock/", "${TMPDIR}/.X11-unix/X0"]})"));
  EXPECT_EQ(p.filesystem.unix_endpoints, (Strings{"/home/agent/.ssh-agent/sock", "/tmp/.X11-unix/X0"}));
}

TEST(PolicyPaths, RootCannotBeGranted) {
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["/"]})"), "/filesystem/read/0", {"whole host"});
  ExpectOneIssue(Doc(R"("filesystem": {"write": ["//"]})"), "/filesystem/write/0", {"whole host"});
}

// ---------------------------------------------------------------------------
// Environment variable names

TEST(PolicyEnv, InvalidNames) {
  ExpectOneIssue(Doc(R"("process": {"env": {"inherit": ["1X"]}})"), "/process/env/inherit/0",
                 {"\"1X\" is not a valid variable name"});
  ExpectOneIssue(Doc(R"("process": {"env": {"inherit": ["A-B"]}})"), "/process/env/inherit/0", {"not a valid"});
  ExpectOneIssue(Doc(R"("process": {"env": {"inherit": [""]}})"), "/process/env/inherit/0", {"not a valid"});
  ExpectOneIssue(Doc(R"("process": {"env": {"set": {"A B": "x"}}})"), "/process/env/set/A B", {"not a valid"});
  ExpectOneIssue(Doc(R"("process": {"env": {"set": {"A=B": "x"}}})"), "/process/env/set/A=B", {"not a valid"});
  ExpectOneIssue(Doc(R"("process": {"env": {"set": {"A/B": "x"}}})"), "/process/env/set/A~1B", {"not a valid"});
  ExpectOneIssue(Doc(R"("process": {"env": {"set": {"": "x"}}})"), "/process/env/set/", {"not a valid"});
}

// ---------------------------------------------------------------------------
// Limits

TEST(PolicyLimits, LowerBounds) {
  ExpectOneIssue(Doc(R"("limits": {"pids": 1})"), "/limits/pids", {"out of range", "between 2 and"});
  ExpectOneIssue(Doc(R"("limits": {"pids": 0})"), "/limits/pids", {"out of range"});
  ExpectOneIssue(Doc(R"("limits": {"pids": -5})"), "/limits/pids", {"out of range"});
  ExpectOneIssue(Doc(R"("limits": {"memoryMiB": 7})"), "/limits/memoryMiB", {"out of range", "between 8 and"});
  ExpectOneIssue(Doc(R"("limits": {"cpus": 0})"), "/limits/cpus", {"out of range", "0.01 and 1024"});
  ExpectOneIssue(Doc(R"("limits": {"cpus": 0.009})"), "/limits/cpus", {"out of range"});
  ExpectOneIssue(Doc(R"("limits": {"cpus": -1})"), "/limits/cpus", {"out of range"});
  ExpectOneIssue(Doc(R"("limits": {"cpuSeconds": 0})"), "/limits/cpuSeconds", {"between 1 and"});
  ExpectOneIssue(Doc(R"("limits": {"openFiles": 3})"), "/limits/openFiles", {"between 4 and"});
  ExpectOneIssue(Doc(R"("limits": {"fileSizeMiB": 0})"), "/limits/fileSizeMiB", {"between 1 and"});
  ExpectOneIssue(Doc(R"("process": {"timeoutMs": 0})"), "/process/timeoutMs", {"between 1 and"});
}

TEST(PolicyLimits, UpperBounds) {
  ExpectOneIssue(Doc(R"("limits": {"pids": 4194305})"), "/limits/pids", {"between 2 and 4194304"});
  ExpectOneIssue(Doc(R"("limits": {"memoryMiB": 1073741825})"), "/limits/memoryMiB", {"and 1073741824"});
  ExpectOneIssue(Doc(R"("limits": {"cpus": 1024.5})"), "/limits/cpus", {"out of range"});
  ExpectOneIssue(Doc(R"("limits": {"cpuSeconds": 2147483649})"), "/limits/cpuSeconds", {"and 2147483648"});
  ExpectOneIssue(Doc(R"("limits": {"openFiles": 1048577})"), "/limits/openFiles", {"and 1048576"});
  ExpectOneIssue(Doc(R"("limits": {"fileSizeMiB": 1073741825})"), "/limits/fileSizeMiB", {"and 1073741824"});
  ExpectOneIssue(Doc(R"("process": {"timeoutMs": 604800001})"), "/process/timeoutMs", {"and 604800000"});
  // Beyond int64 (unsigned in the JSON parser) and beyond it as a float.
  ExpectOneIssue(Doc(R"("limits": {"pids": 18446744073709551615})"), "/limits/pids", {"out of range"});
  ExpectOneIssue(Doc(R"("limits": {"memoryMiB": 1e300})"), "/limits/memoryMiB", {"out of range"});
  ExpectOneIssue(Doc(R"("limits": {"memoryMiB": -1e300})"), "/limits/memoryMiB", {"out of range"});
}

TEST(PolicyLimits, BoundsAreInclusive) {
  Policy lo = Valid(Doc(R"("limits": {"pids": 2, "memoryMiB": 8, "cpus": 0.01, "cpuSeconds": 1, "openFiles": 4,
                                      "fileSizeMiB": 1}, "process": {"timeoutMs": 1})"));
  EXPECT_EQ(lo.limits.pids, 2);
  EXPECT_EQ(lo.limits.memory_mib, 8);
  EXPECT_EQ(lo.limits.cpus, 0.01);
  EXPECT_EQ(lo.limits.open_files, 4);
  EXPECT_EQ(lo.process.timeout_ms, 1);
  Policy hi = Valid(Doc(R"("limits": {"pids": 4194304, "memoryMiB": 1073741824, "cpus": 1024,
                                      "cpuSeconds": 2147483648, "openFiles": 1048576, "fileSizeMiB": 1073741824},
                           "process": {"timeoutMs": 604800000})"));
  EXPECT_EQ(hi.limits.pids, 4194304);
  EXPECT_EQ(hi.limits.memory_mib, int64_t{1} << 30);
  EXPECT_EQ(hi.limits.cpu_seconds, int64_t{1} << 31);
  EXPECT_EQ(hi.process.timeout_ms, int64_t{604800000});
}

// ---------------------------------------------------------------------------
// Network and version

TEST(PolicyNetwork, NoneAndHost) {
  EXPECT_EQ(Valid(Doc(R"("network": "none")")).network, NetworkMode::kNone);
  EXPECT_EQ(Valid(Doc(R"("network": "host")")).network, NetworkMode::kHost);
}

TEST(PolicyNetwork, InvalidValues) {
  ExpectOneIssue(Doc(R"("network": "None")"), "/network", {"\"none\"", "\"host\"", "got \"None\""});
  ExpectOneIssue(Doc(R"("network": "allow")"), "/network", {"got \"allow\""});
  ExpectOneIssue(Doc(R"("network": true)"), "/network", {"got true"});
  ExpectOneIssue(Doc(R"("network": ["host"])"), "/network", {"got [\"host\"]"});
  ExpectOneIssue(Doc(R"("network": null)"), "/network", {"got null"});
  // The rules belong under "egress": both the stray field and the missing
  // object are named.
  PolicyLoad load = Parse(Doc(R"("network": {"allow": ["example.com"]})"));
  ASSERT_EQ(load.issues.size(), 2u) << Describe(load);
  EXPECT_EQ(load.issues[0].path, "/network/allow");
  EXPECT_TRUE(Contains(load.issues[0].reason, "unknown field (expected one of: egress)"));
  EXPECT_EQ(load.issues[1].path, "/network/egress");
}

TEST(PolicyNetwork, EgressRulesAreReadAndKeptAsWritten) {
  Policy p = Valid(Doc(R"("network": {"egress": {"default": "deny",
      "allow": ["pypi.org:443", "*.pythonhosted.org:443", "github.com:443,22", "10.20.0.0/16:5432"],
      "deny": ["evil.pypi.org"]}})"));
  EXPECT_EQ(p.network, NetworkMode::kEgress);
  EXPECT_FALSE(p.egress.default_allow);
  EXPECT_EQ(p.egress.allow, (Strings{"pypi.org:443", "*.pythonhosted.org:443", "github.com:443,22", "10.20.0.0/16:5432"}));
  EXPECT_EQ(p.egress.deny, (Strings{"evil.pypi.org"}));
  Policy open = Valid(Doc(R"("network": {"egress": {"default": "allow"}})"));
  EXPECT_TRUE(open.egress.default_allow);
  EXPECT_TRUE(open.egress.allow.empty());
  // No "default": deny.
  EXPECT_FALSE(Valid(Doc(R"("network": {"egress": {}})")).egress.default_allow);
  // Round trip through the enforced form.
  EXPECT_TRUE(Contains(PolicyToJson(p), "\"evil.pypi.org\"")) << PolicyToJson(p);
}

TEST(PolicyNetwork, BadEgressRulesNameTheirPath) {
  ExpectOneIssue(Doc(R"("network": {"egress": {"allow": ["pypi.org:443", "pypi.*.org"]}})"),
                 "/network/egress/allow/1", {"pypi.*.org", "leftmost"});
  ExpectOneIssue(Doc(R"("network": {"egress": {"allow": ["x.com:0"]}})"), "/network/egress/allow/0", {"x.com:0"});
  ExpectOneIssue(Doc(R"("network": {"egress": {"allow": ["x.com:65536"]}})"), "/network/egress/allow/0", {"65536"});
  ExpectOneIssue(Doc(R"("network": {"egress": {"deny": ["10.20.1.0/16"]}})"), "/network/egress/deny/0",
                 {"10.20.0.0/16"});
  ExpectOneIssue(Doc(R"("network": {"egress": {"allow": ["udp://dns.example.com:53"]}})"),
                 "/network/egress/allow/0", {"udp egress is not relayed"});
  ExpectOneIssue(Doc(R"("network": {"egress": {"allow": ["x.com:443", "X.com.:443"]}})"),
                 "/network/egress/allow/1", {"repeats the rule at /network/egress/allow/0"});
  ExpectOneIssue(Doc(R"("network": {"egress": {"default": "block"}})"), "/network/egress/default",
                 {"\"deny\" or \"allow\"", "got \"block\""});
  ExpectOneIssue(Doc(R"("network": {"egress": {"allow": "x.com"}})"), "/network/egress/allow", {"must be an array"});
  ExpectOneIssue(Doc(R"("network": {"egress": {"allow": [443]}})"), "/network/egress/allow/0", {"must be a string"});
  ExpectOneIssue(Doc(R"("network": {"egress": {"alow": []}})"), "/network/egress/alow",
                 {"unknown field", "default, allow, deny"});
  ExpectOneIssue(Doc(R"("network": {})"), "/network/egress", {"missing"});
  // A udp deny rule is fine: everything but DNS is dropped anyway.
  EXPECT_EQ(Valid(Doc(R"("network": {"egress": {"deny": ["udp://x.com"]}})")).egress.deny, (Strings{"udp://x.com"}));
}

TEST(PolicyVersion, MissingOrUnsupported) {
  ExpectOneIssue(R"({})", "/ward", {"required", "format version"});
  ExpectOneIssue(R"({"network": "none"})", "/ward", {"required"});
  ExpectOneIssue(R"({"ward": 2})", "/ward", {"unsupported format version 2", "version 1"});
  ExpectOneIssue(R"({"ward": 0})", "/ward", {"unsupported format version 0"});
  ExpectOneIssue(R"({"ward": "1"})", "/ward", {"unsupported format version \"1\""});
  ExpectOneIssue(R"({"ward": 1.5})", "/ward", {"unsupported format version 1.5"});
  ExpectOneIssue(R"({"ward": true})", "/ward", {"unsupported format version true"});
  ExpectOneIssue(R"({"ward": null})", "/ward", {"unsupported format version null"});
  ExpectOneIssue(R"({"ward": 18446744073709551615})", "/ward", {"unsupported format version"});
}

// ---------------------------------------------------------------------------
// Malformed JSON and duplicate keys

TEST(PolicyJson, MalformedJsonNamesTheBytePosition) {
  ExpectOneIssue(R"({"ward":1,})", "/", {"malformed JSON at byte 11", "line 1, column 11"});
  ExpectOneIssue("{\"ward\": 1,\n", "/", {"malformed JSON at byte 13", "line 2, column 1", "unexpected end of input"});
  ExpectOneIssue("", "/", {"malformed JSON at byte 1", "unexpected end of input"});
  ExpectOneIssue(R"({"ward" 1})", "/", {"malformed JSON at byte 9", "expected ':'"});
  ExpectOneIssue(R"({"ward": 1} {})", "/", {"malformed JSON at byte 13", "expected end of input"});
  // Comments are allowed (ward learn writes them); an unterminated one is not.
  ExpectOneIssue("/* comment\n{\"ward\": 1}", "/", {"malformed JSON at byte", "comment"});
  ExpectOneIssue(R"({'ward': 1})", "/", {"malformed JSON at byte 2"});
}

TEST(PolicyJson, InvalidUtf8AndHugeNumbers) {
  ExpectOneIssue("{\"ward\": 1, \"description\": \"\xff\"}", "/", {"malformed JSON", "UTF-8"});
  ExpectOneIssue(R"({"ward": 1, "limits": {"pids": 1e400}})", "/", {"malformed JSON", "number overflow"});
  PolicyLoad load = Parse("{\"ward\": 1, \"description\": \"\xff\"}");
  ASSERT_EQ(load.issues.size(), 1u);
  EXPECT_NO_THROW(json(load.issues[0].reason).dump()) << "issues must be valid UTF-8";
}

TEST(PolicyJson, DuplicateKeysAreRejected) {
  // nlohmann::json keeps the last value, other readers the first: refuse both.
  ExpectOneIssue(R"({"ward": 1, "network": "none", "network": "host"})", "/network",
                 {"duplicate key \"network\""});
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["/a"], "read": ["/b"]})"), "/filesystem/read", {"duplicate key"});
  ExpectOneIssue(Doc(R"("process": {"env": {"set": {"A": "1", "A": "2"}}})"), "/process/env/set/A",
                 {"duplicate key \"A\""});
  ExpectOneIssue(R"({"ward": 1, "ward": 1})", "/ward", {"duplicate key"});
}

TEST(PolicyJson, DuplicateKeyPointerCountsArrayElements) {
  PolicyLoad load = Parse(Doc(R"("x": [1, [2], {"k": 1, "k": 2}])"));
  EXPECT_EQ(IssuePaths(load), (Strings{"/x/2/k", "/x"})) << Describe(load);
  EXPECT_TRUE(Contains(load.issues[0].reason, "duplicate key \"k\""));
}

TEST(PolicyJson, DuplicateKeyPointerEscapes) {
  ExpectOneIssue(Doc(R"("process": {"env": {"set": {"A_1": "1", "A_1": "1"}}})"), "/process/env/set/A_1",
                 {"duplicate"});
  PolicyLoad load = Parse(Doc(R"("a/b": 1, "a/b": 2)"));
  EXPECT_EQ(IssuePaths(load), (Strings{"/a~1b", "/a~1b"})) << Describe(load);
}

// ---------------------------------------------------------------------------
// Every issue, at once

TEST(PolicyAllIssues, FiveMistakesGiveFiveIssues) {
  PolicyLoad load = Parse(R"({
    "ward": 1,
    "filesystem": {"reed": ["/srv"], "write": ["relative/dir"]},
    "process": {"env": {"inherit": ["PATH", "BAD-NAME"]}, "timeoutMs": -1},
    "limits": {"pids": 1},
    "network": "internet"
  })");
  EXPECT_FALSE(load.ok());
  Strings paths = IssuePaths(load);
  std::sort(paths.begin(), paths.end());
  EXPECT_EQ(paths, (Strings{"/filesystem/reed", "/filesystem/write/0", "/limits/pids", "/network",
                            "/process/env/inherit/1", "/process/timeoutMs"}))
      << Describe(load);
}

TEST(PolicyAllIssues, ExactlyFiveAcrossEverySection) {
  PolicyLoad load = Parse(R"({
    "ward": 2,
    "filesystem": {"read": ["/proc/self"]},
    "process": {"cwd": "${NOPE}"},
    "limits": {"memoryMiB": 4},
    "enforcement": {"landlock": "maybe"}
  })");
  ASSERT_EQ(load.issues.size(), 5u) << Describe(load);
  EXPECT_EQ(IssuePaths(load),
            (Strings{"/ward", "/filesystem/read/0", "/process/cwd", "/limits/memoryMiB", "/enforcement/landlock"}));
  EXPECT_TRUE(Contains(load.issues[0].reason, "unsupported format version 2"));
  EXPECT_TRUE(Contains(load.issues[1].reason, "provided by the sandbox itself"));
  EXPECT_TRUE(Contains(load.issues[2].reason, "unknown variable ${NOPE}"));
  EXPECT_TRUE(Contains(load.issues[3].reason, "out of range"));
  EXPECT_TRUE(Contains(load.issues[4].reason, "\"required\" or \"best-effort\""));
}

TEST(PolicyAllIssues, EveryBadListEntryIsReported) {
  PolicyLoad load = Parse(Doc(R"("filesystem": {"read": ["a", "/ok", "", "/x/..", 5, "/dev"]})"));
  EXPECT_EQ(IssuePaths(load), (Strings{"/filesystem/read/0", "/filesystem/read/2", "/filesystem/read/3",
                                       "/filesystem/read/4", "/filesystem/read/5"}))
      << Describe(load);
}

TEST(PolicyAllIssues, StructuralAndContradictionIssuesTogether) {
  PolicyLoad load = Parse(Doc(R"("filesystem": {"read": ["/a", "/a"], "write": ["/b"], "deny": [1]},
                                 "process": {"env": {"inherit": ["X"], "set": {"X": "1"}}}, "bogus": 1)"));
  Strings paths = IssuePaths(load);
  std::sort(paths.begin(), paths.end());
  EXPECT_EQ(paths, (Strings{"/bogus", "/filesystem/deny/0", "/filesystem/read/1", "/process/env/inherit/0"}))
      << Describe(load);
}

TEST(PolicyAllIssues, ExtendsUnknownDoesNotHideOtherIssues) {
  PolicyLoad load = Parse(R"({"ward": 1, "extends": "nope", "limits": {"pids": 0}})");
  EXPECT_EQ(IssuePaths(load), (Strings{"/extends", "/limits/pids"})) << Describe(load);
}

TEST(PolicyAllIssues, FormatIssuesPrintsFilePointerReason) {
  PolicyLoad load = Parse(R"({"ward": 1, "network": 1, "limits": {"pids": 1}})");
  EXPECT_EQ(load.FormatIssues("agent.json"),
            "agent.json: /limits/pids: out of range: must be between 2 and 4194304 (processes and threads, including the sandbox's init)\n"
            "agent.json: /network: must be \"none\" (loopback only), \"host\" (the host's network, "
            "unrestricted) or {\"egress\": {...}} (rules), got 1\n");
}

// ---------------------------------------------------------------------------
// Contradictions

TEST(PolicyContradictions, SamePathReadAndWrite) {
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["/srv", "/data"], "write": ["/data"]})"), "/filesystem/read/1",
                 {"\"/data\"", "both as read-only and as writable", "/filesystem/write/0", "keep one"});
  // Equal after normalization.
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["${HOME}/d/"], "write": ["${HOME}//d"]})"), "/filesystem/read/0",
                 {"both as read-only and as writable"});
}

TEST(PolicyContradictions, ListedTwice) {
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["/a", "/b", "/a/"]})"), "/filesystem/read/2",
                 {"\"/a\" is listed twice", "first at /filesystem/read/0"});
  ExpectOneIssue(Doc(R"("filesystem": {"write": ["${CWD}", "${CWD}/"]})"), "/filesystem/write/1", {"listed twice"});
  ExpectOneIssue(Doc(R"("filesystem": {"write": ["${HOME}//x", "${HOME}/./x/"]})"), "/filesystem/write/1",
                 {"\"/home/agent/x\" is listed twice"});
  ExpectOneIssue(Doc(R"("filesystem": {"deny": ["${HOME}/.ssh", "${HOME}/.ssh/"]})"), "/filesystem/deny/1",
                 {"listed twice"});
  ExpectOneIssue(Doc(R"("process": {"env": {"inherit": ["PATH", "LANG", "PATH"]}})"), "/process/env/inherit/2",
                 {"\"PATH\" is listed twice", "first at /process/env/inherit/0"});
}

TEST(PolicyContradictions, DifferentTextsExpandingToOnePathAreMerged) {
  // ${CWD} and ${WORKSPACE} are equal by default: a policy naming both must
  // not be valid in one directory and invalid in another.
  PolicyVars same = Vars();
  same.values["WORKSPACE"] = "/work/proj";
  Policy p = Valid(Doc(R"("filesystem": {"write": ["${CWD}", "${WORKSPACE}", "/work/proj"], "deny": ["${CWD}/.env", "${WORKSPACE}/.env"]})"), same);
  EXPECT_EQ(p.filesystem.write, (Strings{"/work/proj"}));
  EXPECT_EQ(p.filesystem.deny, (Strings{"/work/proj/.env"}));
  // Read and write of one path through different texts: the more restrictive (read-only) holds.
  Policy r = Valid(Doc(R"("filesystem": {"read": ["${CWD}"], "write": ["${WORKSPACE}", "/srv"]})"), same);
  EXPECT_EQ(r.filesystem.read, (Strings{"/work/proj"}));
  EXPECT_EQ(r.filesystem.write, (Strings{"/srv"}));
  // The same text twice is still a mistake.
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["${CWD}"], "write": ["${CWD}/"]})"), "/filesystem/read/0",
                 {"both as read-only and as writable"}, same);
}

TEST(PolicyContradictions, ListedTwiceNamesTheUsersEntryEvenWhenExtending) {
  // The profile's own read of ${WORKSPACE} comes first after composition;
  // the pointer must still index the user's document.
  ExpectOneIssue(R"({"ward": 1, "extends": "offline-readonly", "filesystem": {"read": ["/srv", "/srv"]}})",
                 "/filesystem/read/1", {"listed twice"});
}

TEST(PolicyContradictions, SamePathWriteAndDenyIsNotAContradiction) {
  // Equal specificity: deny wins when the plan is compiled; documented, not an error.
  Policy p = Valid(Doc(R"("filesystem": {"write": ["/data"], "deny": ["/data"]})"));
  EXPECT_EQ(p.filesystem.write, (Strings{"/data"}));
  EXPECT_EQ(p.filesystem.deny, (Strings{"/data"}));
}

TEST(PolicyContradictions, UnixEntryListedTwice) {
  ExpectOneIssue(Doc(R"("filesystem": {"unix": ["/run/a.sock", "/run//a.sock"]})"), "/filesystem/unix/1",
                 {"\"/run/a.sock\" is listed twice (first at /filesystem/unix/0)"});
}

TEST(PolicyContradictions, UnixEntryAlsoGrantedIsNotAContradiction) {
  // The grant makes it visible; the entry lets the workload use it.
  Policy p =
      Valid(Doc(R"("filesystem": {"read": ["/run/a.sock"], "write": ["/srv"], "unix": ["/run/a.sock", "/srv/b"]})"));
  EXPECT_EQ(p.filesystem.read, (Strings{"/run/a.sock"}));
  EXPECT_EQ(p.filesystem.unix_endpoints, (Strings{"/run/a.sock", "/srv/b"}));
}

TEST(PolicyContradictions, UnixEntryUnderADeniedPath) {
  ExpectOneIssue(
      Doc(R"("filesystem": {"read": ["${HOME}"], "deny": ["${HOME}/.ssh"], "unix": ["${HOME}/.ssh/agent"]})"),
      "/filesystem/unix/0",
      {"\"/home/agent/.ssh/agent\" lies under the denied path \"/home/agent/.ssh\"",
       "a deny beats filesystem.unix: remove one of the two"});
  // The entry itself denied; and an equally specific grant does not help.
  ExpectOneIssue(Doc(R"("filesystem": {"deny": ["/run/a.sock"], "unix": ["/run/a.sock"]})"), "/filesystem/unix/0",
                 {"denied path \"/run/a.sock\""});
  ExpectOneIssue(Doc(R"("filesystem": {"deny": ["/run"], "read": ["/run"], "unix": ["/run/a.sock"]})"),
                 "/filesystem/unix/0", {"denied path \"/run\""});
  // The pointer names the user's entry, even after two texts for one path merged.
  ExpectOneIssue(Doc(R"("filesystem": {"deny": ["/srv"], "unix": ["${CWD}/a", "/work/proj/a", "/srv/b"]})"),
                 "/filesystem/unix/2", {"\"/srv/b\" lies under the denied path \"/srv\""});
}

TEST(PolicyContradictions, UnixEntryUnderDenyButMoreSpecificGrantIsVisible) {
  Policy p =
      Valid(Doc(R"("filesystem": {"deny": ["${HOME}"], "write": ["${HOME}/proj"], "unix": ["${HOME}/proj/s"]})"));
  EXPECT_EQ(p.filesystem.unix_endpoints, (Strings{"/home/agent/proj/s"}));
  // A unix entry is not itself a grant that could beat a deny above it.
  PolicyLoad load = Parse(Doc(R"("filesystem": {"deny": ["${HOME}"], "unix": ["${HOME}/s", "${HOME}/s/x"]})"));
  EXPECT_FALSE(load.ok());
  EXPECT_EQ(IssuePaths(load), (Strings{"/filesystem/unix/0", "/filesystem/unix/1"})) << Describe(load);
}

TEST(PolicyContradictions, EnvInheritedAndSet) {
  ExpectOneIssue(Doc(R"("process": {"env": {"inherit": ["PATH", "CI"], "set": {"CI": "1"}}})"),
                 "/process/env/inherit/1", {"\"CI\" is both inherited and set", "/process/env/set/CI", "keep one"});
}

TEST(PolicyContradictions, CwdUnderDeniedPath) {
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["${HOME}"], "deny": ["${HOME}/secret"]},
                       "process": {"cwd": "${HOME}/secret/sub"})"),
                 "/process/cwd", {"\"/home/agent/secret/sub\" lies under the denied path \"/home/agent/secret\""});
  ExpectOneIssue(Doc(R"("filesystem": {"deny": ["/srv"]}, "process": {"cwd": "/srv"})"), "/process/cwd",
                 {"denied path \"/srv\""});
}

TEST(PolicyContradictions, CwdUnderDenyButMoreSpecificGrantIsVisible) {
  // The most specific rule wins: /home/agent/proj is writable, so it can be the cwd.
  Policy p = Valid(Doc(R"("filesystem": {"deny": ["${HOME}"], "write": ["${HOME}/proj"]},
                          "process": {"cwd": "${HOME}/proj/src"})"));
  EXPECT_EQ(p.process.cwd, "/home/agent/proj/src");
}

TEST(PolicyContradictions, CwdUnderDenyAndAnEquallySpecificGrant) {
  // Between equally specific rules deny wins.
  ExpectOneIssue(Doc(R"("filesystem": {"deny": ["/srv"], "write": ["/srv"]}, "process": {"cwd": "/srv/x"})"),
                 "/process/cwd", {"lies under the denied path \"/srv\""});
  // A grant above the deny does not help either.
  ExpectOneIssue(Doc(R"("filesystem": {"read": ["/srv"], "deny": ["/srv/a"]}, "process": {"cwd": "/srv/a/b"})"),
                 "/process/cwd", {"denied path \"/srv/a\""});
}

TEST(PolicyContradictions, CwdCheckSeesTheComposedPolicy) {
  PolicyVars v = Vars();
  v.values["WORKSPACE"] = "/home/agent/ws";
  // The profile grants ${WORKSPACE}, more specific than the user's deny of ${HOME}.
  Policy p = Valid(R"({"ward": 1, "extends": "workspace-write", "filesystem": {"deny": ["${HOME}"]},
                       "process": {"cwd": "${WORKSPACE}"}})",
                   v);
  EXPECT_EQ(p.process.cwd, "/home/agent/ws");
  // Denying the workspace itself removes the profile's grant: now it is hidden.
  ExpectOneIssue(R"({"ward": 1, "extends": "workspace-write", "filesystem": {"deny": ["${WORKSPACE}"]},
                     "process": {"cwd": "${WORKSPACE}/src"}})",
                 "/process/cwd", {"lies under the denied path \"/home/agent/ws\""}, v);
}

// ---------------------------------------------------------------------------
// extends and composition

TEST(PolicyExtends, UnknownProfile) {
  ExpectOneIssue(R"({"ward": 1, "extends": "workspace-rw"})", "/extends",
                 {"unknown profile \"workspace-rw\"", "ward policy profiles"});
  ExpectOneIssue(R"({"ward": 1, "extends": ""})", "/extends", {"unknown profile \"\""});
  ExpectOneIssue(R"({"ward": 1, "extends": "Minimal"})", "/extends", {"unknown profile"});
}

TEST(PolicyExtends, ProfileAloneIsWhatTheUserGets) {
  Policy p = Valid(R"({"ward": 1, "extends": "workspace-write"})");
  EXPECT_EQ(p.extends, "workspace-write");
  EXPECT_TRUE(p.filesystem.read.empty());
  EXPECT_EQ(p.filesystem.write, (Strings{"/work/ws"}));
  EXPECT_EQ(p.process.env.inherit, (Strings{"PATH", "LANG", "LANGUAGE", "LC_ALL", "TERM"}));
  EXPECT_EQ(p.process.env.set, (std::map<std::string, std::string>{{"HOME", "/home/agent"}}));
  EXPECT_EQ(p.filesystem.private_home, "/home/agent");
  EXPECT_EQ(p.network, NetworkMode::kNone);
  EXPECT_TRUE(p.filesystem.private_tmp);
  EXPECT_TRUE(p.filesystem.system);
}

TEST(PolicyExtends, UserRuleForTheSamePathWins) {
  // The profile writes ${WORKSPACE}; the user reads it: read-only it is.
  Policy p = Valid(R"({"ward": 1, "extends": "workspace-write", "filesystem": {"read": ["${WORKSPACE}"]}})");
  EXPECT_EQ(p.filesystem.read, (Strings{"/work/ws"}));
  EXPECT_TRUE(p.filesystem.write.empty());
  // offline-readonly reads it; the user writes it.
  Policy w = Valid(R"({"ward": 1, "extends": "offline-readonly", "filesystem": {"write": ["/work/ws/"]}})");
  EXPECT_TRUE(w.filesystem.read.empty());
  EXPECT_EQ(w.filesystem.write, (Strings{"/work/ws"}));
  // The user denies it: nothing of the profile's rule remains.
  Policy d = Valid(R"({"ward": 1, "extends": "workspace-write", "filesystem": {"deny": ["${WORKSPACE}"]}})");
  EXPECT_TRUE(d.filesystem.write.empty());
  EXPECT_EQ(d.filesystem.deny, (Strings{"/work/ws"}));
}

TEST(PolicyExtends, OtherPathsAccumulate) {
  Policy p = Valid(R"({"ward": 1, "extends": "workspace-write",
                       "filesystem": {"write": ["/data"], "read": ["/usr/share"], "deny": ["${WORKSPACE}/.env"]}})");
  EXPECT_EQ(p.filesystem.write, (Strings{"/work/ws", "/data"}));
  EXPECT_EQ(p.filesystem.read, (Strings{"/usr/share"}));
  EXPECT_EQ(p.filesystem.deny, (Strings{"/work/ws/.env"}));
}

// filesystem.unix composes as read, write and deny do: a path the document
// names in any list replaces the profile's rules for it; the rest accumulates.
TEST(PolicyExtends, UnixComposesLikeTheOtherPathLists) {
  Policy p = Valid(R"({"ward": 1, "extends": "workspace-write", "filesystem": {"unix": ["/run/a.sock"]}})");
  EXPECT_EQ(p.filesystem.write, (Strings{"/work/ws"}));
  EXPECT_EQ(p.filesystem.unix_endpoints, (Strings{"/run/a.sock"}));
  Policy same = Valid(R"({"ward": 1, "extends": "workspace-write", "filesystem": {"unix": ["${WORKSPACE}"]}})");
  EXPECT_TRUE(same.filesystem.write.empty());
  EXPECT_EQ(same.filesystem.unix_endpoints, (Strings{"/work/ws"}));
  // The check after composition sees the profile's grant: ${WORKSPACE} is
  // more specific than the user's deny of ${HOME}.
  PolicyVars v = Vars();
  v.values["WORKSPACE"] = "/home/agent/ws";
  Policy h = Valid(
      R"({"ward": 1, "extends": "workspace-write", "filesystem": {"deny": ["${HOME}"], "unix": ["${WORKSPACE}/s"]}})",
      v);
  EXPECT_EQ(h.filesystem.unix_endpoints, (Strings{"/home/agent/ws/s"}));
  ExpectOneIssue(
      R"({"ward": 1, "extends": "offline-readonly", "filesystem": {"deny": ["${WORKSPACE}"], "unix": ["${WORKSPACE}/s"]}})",
      "/filesystem/unix/0", {"lies under the denied path \"/home/agent/ws\""}, v);
}

TEST(PolicyExtends, EnvInheritAndSetOverride) {
  // The profile inherits LANG and sets HOME=/tmp.
  Policy p = Valid(R"({"ward": 1, "extends": "workspace-write",
                       "process": {"env": {"inherit": ["HOME", "PATH", "EDITOR"], "set": {"LANG": "C.UTF-8", "CI": "1"}}}})");
  EXPECT_EQ(p.process.env.inherit, (Strings{"PATH", "LANGUAGE", "LC_ALL", "TERM", "HOME", "EDITOR"}));
  EXPECT_EQ(p.process.env.set, (std::map<std::string, std::string>{{"LANG", "C.UTF-8"}, {"CI", "1"}}));
  // Setting a profile-set variable replaces its value.
  Policy h = Valid(R"({"ward": 1, "extends": "minimal", "process": {"env": {"set": {"HOME": "${HOME}"}}}})");
  EXPECT_EQ(h.process.env.set.at("HOME"), "/home/agent");
}

TEST(PolicyExtends, ScalarsAndLimitsOverride) {
  Policy p = Valid(R"({"ward": 1, "extends": "offline-readonly",
                       "filesystem": {"tmp": "none", "system": false},
                       "process": {"argv": ["make"], "cwd": "${WORKSPACE}", "timeoutMs": 5000, "shell": true},
                       "limits": {"memoryMiB": 256, "pids": 32, "cpus": 0.5, "cpuSeconds": 9, "openFiles": 64, "fileSizeMiB": 10},
                       "network": "host", "enforcement": {"landlock": "best-effort"}})");
  EXPECT_FALSE(p.filesystem.private_tmp);
  EXPECT_FALSE(p.filesystem.system);
  EXPECT_EQ(p.process.argv, (Strings{"make"}));
  EXPECT_EQ(p.process.cwd, "/work/ws");
  EXPECT_EQ(p.process.timeout_ms, 5000);
  EXPECT_TRUE(p.process.shell);
  EXPECT_EQ(p.limits.memory_mib, 256);
  EXPECT_EQ(p.limits.pids, 32);
  EXPECT_EQ(p.limits.cpus, 0.5);
  EXPECT_EQ(p.limits.cpu_seconds, 9);
  EXPECT_EQ(p.limits.open_files, 64);
  EXPECT_EQ(p.limits.file_size_mib, 10);
  EXPECT_EQ(p.network, NetworkMode::kHost);
  EXPECT_EQ(p.enforcement.landlock, Requirement::kBestEffort);
  EXPECT_EQ(p.filesystem.read, (Strings{"/work/ws"}));  // the profile's grant is kept
}

TEST(PolicyExtends, UnsetScalarsKeepTheProfilesValues) {
  Policy p = Valid(R"({"ward": 1, "extends": "minimal", "limits": {"pids": 16}})");
  EXPECT_EQ(p.limits.pids, 16);
  EXPECT_FALSE(p.limits.memory_mib.has_value());
  EXPECT_EQ(p.network, NetworkMode::kNone);
  EXPECT_TRUE(p.filesystem.private_tmp);
  EXPECT_EQ(p.process.env.set.at("HOME"), "/home/agent");
}

TEST(PolicyExtends, ProfileThatCannotExpandIsReportedAtExtends) {
  PolicyVars v = Vars();
  v.values.erase("WORKSPACE");
  ExpectOneIssue(R"({"ward": 1, "extends": "workspace-write"})", "/extends",
                 {"profile workspace-write", "/filesystem/write/0", "unknown variable ${WORKSPACE}"}, v);
}

// ---------------------------------------------------------------------------
// Built-in profiles

TEST(PolicyProfiles, ListIsStable) {
  const auto& infos = BuiltinProfiles();
  Strings names;
  for (const auto& i : infos) {
    names.push_back(i.name);
    EXPECT_FALSE(i.description.empty()) << i.name;
  }
  EXPECT_EQ(names, (Strings{"offline-readonly", "workspace-write", "minimal"}));
}

TEST(PolicyProfiles, EveryProfileLoads) {
  for (const auto& info : BuiltinProfiles()) {
    SCOPED_TRACE(info.name);
    PolicyLoad load = LoadProfile(info.name, Vars());
    ASSERT_TRUE(load.ok()) << Describe(load);
    EXPECT_EQ(load.policy->network, NetworkMode::kNone);
    EXPECT_TRUE(load.policy->filesystem.private_tmp);
    EXPECT_TRUE(load.policy->filesystem.system);
    EXPECT_TRUE(load.policy->filesystem.deny.empty());
    EXPECT_EQ(load.policy->process.env.set.at("HOME"), "/home/agent");
    EXPECT_EQ(load.policy->filesystem.private_home, "/home/agent");
  }
}

TEST(PolicyProfiles, Contents) {
  Policy ro = LoadProfile("offline-readonly", Vars()).policy.value();
  EXPECT_EQ(ro.filesystem.read, (Strings{"/work/ws"}));
  EXPECT_TRUE(ro.filesystem.write.empty());
  Policy rw = LoadProfile("workspace-write", Vars()).policy.value();
  EXPECT_TRUE(rw.filesystem.read.empty());
  EXPECT_EQ(rw.filesystem.write, (Strings{"/work/ws"}));
  Policy min = LoadProfile("minimal", Vars()).policy.value();
  EXPECT_TRUE(min.filesystem.read.empty());
  EXPECT_TRUE(min.filesystem.write.empty());
}

TEST(PolicyProfiles, UnknownNameListsTheKnownOnes) {
  PolicyLoad load = LoadProfile("yolo", Vars());
  EXPECT_FALSE(load.ok());
  EXPECT_FALSE(load.policy.has_value());
  ASSERT_EQ(load.issues.size(), 1u);
  EXPECT_EQ(load.issues[0].path, "/");
  EXPECT_EQ(load.issues[0].reason,
            "unknown profile \"yolo\" (built-in profiles: offline-readonly, workspace-write, minimal)");
}

TEST(PolicyProfiles, ExtendingAProfileEqualsLoadingIt) {
  for (const auto& info : BuiltinProfiles()) {
    SCOPED_TRACE(info.name);
    Policy loaded = LoadProfile(info.name, Vars()).policy.value();
    Policy extended = Valid(R"({"ward": 1, "extends": ")" + info.name + R"("})");
    json a = json::parse(PolicyToJson(loaded)), b = json::parse(PolicyToJson(extended));
    b.erase("extends");
    EXPECT_EQ(a, b);
  }
}

// ---------------------------------------------------------------------------
// PolicyToJson

TEST(PolicyToJson, DefaultPolicyIsCanonical) {
  json j = json::parse(PolicyToJson(Valid(R"({"ward": 1})")));
  EXPECT_EQ(j, json::parse(R"({
    "ward": 1,
    "filesystem": {"read": [], "write": [], "deny": [], "unix": [], "tmp": "private", "home": "none", "system": true},
    "process": {"env": {"inherit": [], "set": {}}, "shell": false},
    "limits": {},
    "network": "none",
    "enforcement": {"landlock": "required"},
    "audit": {"trail": "required", "files": "off"}
  })"));
}

// "audit": the agent a policy's runs are for, and whether a run may go on
// without its trail; a layer that names either replaces the profile's.
TEST(PolicyAudit, AgentAndTrail) {
  Policy p = Valid(R"({"ward": 1, "audit": {"agent": "code-reviewer", "trail": "best-effort"}})");
  EXPECT_EQ(p.audit.agent, "code-reviewer");
  EXPECT_EQ(p.audit.trail, Requirement::kBestEffort);
  Policy d = Valid(R"({"ward": 1})");
  EXPECT_EQ(d.audit.agent, "");
  EXPECT_EQ(d.audit.trail, Requirement::kRequired);
  ExpectOneIssue(R"({"ward": 1, "audit": {"agent": "../x"}})", "/audit/agent", {"must be a name"});
  ExpectOneIssue(R"({"ward": 1, "audit": {"agent": ""}})", "/audit/agent", {"must be a name"});
  ExpectOneIssue(R"({"ward": 1, "audit": {"agent": 7}})", "/audit/agent", {"must be a name"});
  ExpectOneIssue(R"({"ward": 1, "audit": {"trail": "off"}})", "/audit/trail", {"\"required\" or \"best-effort\""});
  ExpectOneIssue(R"({"ward": 1, "audit": {"agnet": "x"}})", "/audit/agnet", {"unknown field"});
  // files: whether the file accesses the policy does not grant are recorded.
  EXPECT_EQ(d.audit.files, AuditPolicy::Files::kOff);
  EXPECT_EQ(Valid(R"({"ward": 1, "audit": {"files": "denied"}})").audit.files, AuditPolicy::Files::kDenied);
  EXPECT_EQ(Valid(R"({"ward": 1, "audit": {"files": "off"}})").audit.files, AuditPolicy::Files::kOff);
  ExpectOneIssue(R"({"ward": 1, "audit": {"files": "all"}})", "/audit/files", {"\"denied\" or \"off\""});
  ExpectOneIssue(R"({"ward": 1, "audit": {"files": true}})", "/audit/files", {"\"denied\" or \"off\""});
  Policy layered = Valid(R"({"ward": 1, "extends": "minimal", "audit": {"agent": "a"}})");
  EXPECT_EQ(layered.audit.agent, "a");
  EXPECT_EQ(layered.audit.trail, Requirement::kRequired);
}

TEST(PolicyToJson, EveryFieldIsWritten) {
  Policy p = Valid(R"({"ward": 1, "extends": "minimal", "description": "dropped",
    "filesystem": {"read": ["/usr/share"], "write": ["${WORKSPACE}"], "deny": ["${HOME}/.ssh"], "unix": ["/run/a.sock"],
                   "tmp": "none", "system": false},
    "process": {"argv": ["sh", "-c", "true"], "cwd": "${WORKSPACE}", "env": {"inherit": ["PATH"], "set": {"CI": "1"}},
                "timeoutMs": 1000, "shell": true},
    "limits": {"memoryMiB": 64, "pids": 8, "cpus": 0.5, "cpuSeconds": 2, "openFiles": 32, "fileSizeMiB": 1},
    "network": "host", "enforcement": {"landlock": "best-effort"}, "audit": {"agent": "ci-bot", "trail": "best-effort", "files": "denied"}})");
  json j = json::parse(PolicyToJson(p));
  EXPECT_EQ(j, json::parse(R"({
    "ward": 1,
    "extends": "minimal",
    "filesystem": {"read": ["/usr/share"], "write": ["/work/ws"], "deny": ["/home/agent/.ssh"], "unix": ["/run/a.sock"],
                   "tmp": "none", "home": "private", "system": false},
    "process": {"argv": ["sh", "-c", "true"], "cwd": "/work/ws",
                "env": {"inherit": ["PATH", "LANG", "LANGUAGE", "LC_ALL", "TERM"], "set": {"CI": "1", "HOME": "/home/agent"}},
                "timeoutMs": 1000, "shell": true},
    "limits": {"memoryMiB": 64, "pids": 8, "cpus": 0.5, "cpuSeconds": 2, "openFiles": 32, "fileSizeMiB": 1},
    "network": "host",
    "enforcement": {"landlock": "best-effort"},
    "audit": {"agent": "ci-bot", "trail": "best-effort", "files": "denied"}
  })")) << j.dump(2);
}

TEST(PolicyToJson, OutputParsesBackToTheSamePolicy) {
  const char* docs[] = {
      R"({"ward": 1})",
      R"({"ward": 1, "extends": "workspace-write", "filesystem": {"read": ["${WORKSPACE}"], "deny": ["${HOME}/.ssh"]}})",
      R"({"ward": 1, "extends": "offline-readonly", "process": {"env": {"inherit": ["HOME"], "set": {"LANG": "C"}}},
          "limits": {"cpus": 0.3, "memoryMiB": 100}, "network": "host"})",
      R"({"ward": 1, "filesystem": {"unix": ["${HOME}/agent.sock", "/run/user/1000/bus"]}})",
      R"({"ward": 1, "extends": "minimal", "filesystem": {"home": "none"}})",
      R"({"ward": 1, "filesystem": {"tmp": "none", "system": false, "write": ["/srv"]},
          "process": {"argv": ["x"], "cwd": "/srv", "shell": true, "timeoutMs": 7}})",
  };
  for (const char* doc : docs) {
    SCOPED_TRACE(doc);
    std::string once = PolicyToJson(Valid(doc));
    PolicyLoad again = Parse(once);
    ASSERT_TRUE(again.ok()) << once << "\n" << Describe(again);
    EXPECT_EQ(PolicyToJson(*again.policy), once);
  }
}

// ---------------------------------------------------------------------------
// Files

TEST(PolicyFile, MissingFile) {
  PolicyLoad load = LoadPolicyFile("/nonexistent/ward/policy.json", Vars());
  EXPECT_FALSE(load.ok());
  ASSERT_EQ(load.issues.size(), 1u);
  EXPECT_EQ(load.issues[0].path, "/");
  EXPECT_EQ(load.issues[0].reason, "cannot read policy file: No such file or directory");
}

TEST(PolicyFile, ExamplesParseWithFixedVariables) {
  const std::filesystem::path dir = std::filesystem::path(WARD_SOURCE_DIR) / "examples";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    SCOPED_TRACE(e.path().string());
    PolicyLoad load = LoadPolicyFile(e.path().string(), Vars());
    EXPECT_TRUE(load.ok()) << Describe(load);
    ++n;
  }
  EXPECT_GE(n, 4) << "examples/ should hold at least four policies";
}

TEST(PolicyFile, ValidCorpusParses) {
  const std::filesystem::path dir = std::filesystem::path(WARD_SOURCE_DIR) / "tests/policies/valid";
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    SCOPED_TRACE(e.path().string());
    PolicyLoad load = LoadPolicyFile(e.path().string(), Vars());
    EXPECT_TRUE(load.ok()) << Describe(load);
    ++n;
  }
  EXPECT_GE(n, 5);
}

TEST(PolicyFile, InvalidCorpusIsRejected) {
  const std::filesystem::path dir = std::filesystem::path(WARD_SOURCE_DIR) / "tests/policies";
  int n = 0;
  for (const char* sub : {"invalid", "parser-only"}) {
    for (const auto& e : std::filesystem::directory_iterator(dir / sub)) {
      if (e.path().extension() != ".json") continue;
      SCOPED_TRACE(e.path().string());
      PolicyLoad load = LoadPolicyFile(e.path().string(), Vars());
      EXPECT_FALSE(load.ok());
      EXPECT_FALSE(load.issues.empty());
      ++n;
    }
  }
  EXPECT_GE(n, 10);
}


// ---------------------------------------------------------------------------
// ExtendPolicy: a layer (ward run's command-line grants) on a loaded policy

TEST(PolicyLayer, LayerWinsWhereItSpeaks) {
  Policy base = Valid(Doc(R"("filesystem": {"read": ["/a", "/b"], "write": ["/c"], "deny": ["/a/s"]},
                             "limits": {"memoryMiB": 512}, "process": {"env": {"inherit": ["X"]}})"));
  PolicyLoad load = ExtendPolicy(base, Doc(R"("filesystem": {"write": ["/a"], "deny": ["/c"], "read": ["/a/s"]},
                                              "limits": {"memoryMiB": 64}, "process": {"env": {"set": {"X": "1"}}})"),
                                 Vars());
  ASSERT_TRUE(load.ok()) << Describe(load);
  const auto& fs = load.policy->filesystem;
  EXPECT_EQ(fs.read, (Strings{"/b", "/a/s"}));
  EXPECT_EQ(fs.write, (Strings{"/a"}));
  EXPECT_EQ(fs.deny, (Strings{"/c"}));
  EXPECT_EQ(load.policy->limits.memory_mib, 64);
  EXPECT_TRUE(load.policy->process.env.inherit.empty());
  EXPECT_EQ(load.policy->process.env.set.at("X"), "1");
  // What the layer does not name is kept.
  PolicyLoad empty = ExtendPolicy(base, Doc(R"("process": {})"), Vars());
  ASSERT_TRUE(empty.ok()) << Describe(empty);
  EXPECT_EQ(PolicyToJson(*empty.policy), PolicyToJson(base));
}

TEST(PolicyLayer, IssuesPointIntoTheLayerAndTheWholeIsChecked) {
  Policy base = Valid(Doc(R"("extends": "minimal", "filesystem": {"deny": ["/srv"]})"));
  PolicyLoad bad = ExtendPolicy(base, Doc(R"("filesystem": {"read": ["rel"]}, "limits": {"pids": 1})"), Vars());
  EXPECT_EQ(IssuePaths(bad), (Strings{"/filesystem/read/0", "/limits/pids"})) << Describe(bad);
  EXPECT_FALSE(bad.policy.has_value());
  PolicyLoad hidden = ExtendPolicy(base, Doc(R"("process": {"cwd": "/srv/x"})"), Vars());
  EXPECT_EQ(IssuePaths(hidden), (Strings{"/process/cwd"})) << Describe(hidden);
  PolicyLoad extends = ExtendPolicy(base, Doc(R"("extends": "minimal")"), Vars());
  EXPECT_EQ(IssuePaths(extends), (Strings{"/extends"})) << Describe(extends);
  PolicyLoad ok = ExtendPolicy(base, Doc(R"("process": {"cwd": "/opt"})"), Vars());
  ASSERT_TRUE(ok.ok()) << Describe(ok);
  EXPECT_EQ(ok.policy->extends, std::optional<std::string>("minimal"));
}


TEST(PolicyHome, PrivateHomeIsTheCallersHomePath) {
  Policy p = Valid(Doc(R"("filesystem": {"home": "private"})"));
  EXPECT_EQ(p.filesystem.private_home, "/home/agent");
  Policy none = Valid(Doc(R"("extends": "minimal", "filesystem": {"home": "none"})"));
  EXPECT_EQ(none.filesystem.private_home, "");
  ExpectOneIssue(Doc(R"("filesystem": {"home": "shared"})"), "/filesystem/home", {"must be \"private\"", "\"shared\""});
  PolicyVars root = Vars();
  root.values["HOME"] = "/";
  ExpectOneIssue(Doc(R"("filesystem": {"home": "private"})"), "/filesystem/home", {"${HOME}", "\"/\""}, root);
}

}  // namespace
}  // namespace ward
