// Built-in profiles: policies shipped inside the binary, usable with
// `--profile NAME` or `"extends": "NAME"`.
#include "policy/profiles.h"

namespace ward {

namespace {

// The environment every profile passes through: enough for a shell, a
// compiler or an interpreter to find its tools and print in the user's
// language. HOME is the caller's own path, where the profile mounts a
// private home ("home": "private"): the real one is hidden.
#define WARD_PROFILE_ENV                                                     \
  R"("env": { "inherit": ["PATH", "LANG", "LANGUAGE", "LC_ALL", "TERM"],)" \
  R"( "set": { "HOME": "${HOME}" } })"

const std::vector<BuiltinProfile> kProfiles = {
    {"offline-readonly",
     "read the workspace, write nothing but the private /tmp and home, no network",
     R"({ "ward": 1,
          "filesystem": { "read": ["${WORKSPACE}"], "home": "private" },
          "process": { )" WARD_PROFILE_ENV R"( },
          "network": "none" })"},
    {"workspace-write",
     "read and write the workspace (and a private /tmp and home), no network",
     R"({ "ward": 1,
          "filesystem": { "write": ["${WORKSPACE}"], "home": "private" },
          "process": { )" WARD_PROFILE_ENV R"( },
          "network": "none" })"},
    {"minimal",
     "system files, a private /tmp and home: no workspace, no network",
     R"({ "ward": 1, "filesystem": { "home": "private" }, "process": { )" WARD_PROFILE_ENV R"( },)"
     R"( "network": "none" })"},
};

}  // namespace

const BuiltinProfile* FindProfile(std::string_view name) {
  for (const auto& p : kProfiles) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const std::vector<ProfileInfo>& BuiltinProfiles() {
  static const std::vector<ProfileInfo> infos = [] {
    std::vector<ProfileInfo> v;
    for (const auto& p : kProfiles) v.push_back({p.name, p.description});
    return v;
  }();
  return infos;
}

}  // namespace ward
