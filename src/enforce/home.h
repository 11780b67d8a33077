// What a private home ("filesystem.home": "private") is seeded with, and
// where a command the sandbox cannot find lives on the caller's PATH.
// Host-side reads only; nothing here mounts.
#pragma once

#include <string>
#include <vector>

namespace ward {

// The .gitconfig of a private home: the caller's git identity (user.name and
// user.email from $XDG_CONFIG_HOME/git/config, then ~/.gitconfig, the later
// winning as in git), and nothing else of theirs (credential helpers, URL
// rewrites, include paths are left behind). Without one, a placeholder
// naming `user` and the sandbox, so that `git commit` works.
std::string SeedGitConfig(const std::string& home, const std::string& user);

// The entries of a PATH value, in order, empty ones kept.
std::vector<std::string> PathEntries(const std::string& path_var);

// The first executable `name` on `path_var` (a PATH value), or "".
std::string FindOnPath(const std::string& name, const std::string& path_var);

// The directory to grant so that `exe` is visible: the top directory under
// `home` that holds it (~/.cargo for ~/.cargo/bin/cargo), the prefix of a
// .../bin directory (/opt/tool for /opt/tool/bin/x), else its directory.
std::string GrantFor(const std::string& exe, const std::string& home);

}  // namespace ward
