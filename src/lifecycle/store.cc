#include "lifecycle/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sha2.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "audit/store.h"
#include "base/mountinfo.h"
#include "base/errors.h"
#include "base/file.h"

namespace ward::lifecycle {

namespace {

Error DirError(std::string m) { return Error{Error::Code::kRuntimeDir, std::move(m)}; }

// `path` must be a directory (not a link) owned by us with no group or
// other access; made (0700) if missing and `make`.
Result<void> CheckPrivateDir(const std::string& path, bool make) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) {
    if (errno != ENOENT || !make) return DirError("runtime directory \"" + path + "\": " + ErrnoName(errno));
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return DirError("mkdir \"" + path + "\": " + ErrnoName(errno));
    }
    if (lstat(path.c_str(), &st) != 0) return DirError("runtime directory \"" + path + "\": " + ErrnoName(errno));
  }
  if (!S_ISDIR(st.st_mode)) return DirError("runtime directory \"" + path + "\" is not a directory (a link or a file)");
  if (st.st_uid != geteuid()) {
    return DirError("runtime directory \"" + path + "\" belongs to uid " + std::to_string(st.st_uid) + ", not to you (uid " +
                    std::to_string(geteuid()) + ")");
  }
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return DirError("runtime directory \"" + path + "\" has mode " + mode + ": group and others must have no access (chmod 0700)");
  }
  return {};
}

std::string Hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += d[p[i] >> 4];
    out += d[p[i] & 15];
  }
  return out;
}

}  // namespace

Result<std::string> RuntimeDir(bool make) {
  std::string dir;
  if (const char* w = getenv("WARD_RUNTIME_DIR"); w && *w) {
    dir = w;
  } else if (const char* x = getenv("XDG_RUNTIME_DIR"); x && *x && geteuid() != 0) {
    WARD_TRY(CheckPrivateDir(x, false));
    dir = std::string(x) + "/ward";
  } else if (geteuid() == 0) {
    dir = "/run/ward";
  } else {
    const std::string user_run = "/run/user/" + std::to_string(geteuid());
    struct stat st;
    if (lstat(user_run.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid()) {
      dir = user_run + "/ward";
    } else {
      dir = "/tmp/ward-" + std::to_string(geteuid());
    }
  }
  if (dir.empty() || dir[0] != '/') return DirError("runtime directory \"" + dir + "\": not an absolute path");
  WARD_TRY(CheckPrivateDir(dir, make));
  // The real path from here on: the sandbox's state directories become
  // bind sources, compared with other paths as text (the new root's base
  // must not hide them: /mnt/../tmp/x is under /tmp).
  char real[PATH_MAX];
  if (!realpath(dir.c_str(), real)) return DirError("runtime directory \"" + dir + "\": realpath: " + ErrnoName(errno));
  dir = real;
  WARD_TRY(CheckPrivateDir(dir + "/names", make));
  return dir;
}

std::string Now3339() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &t);
  return buf;
}

std::string Sha256Hex(const std::string& data) {
  char hex[SHA256_DIGEST_STRING_LENGTH];
  SHA256Data(reinterpret_cast<const uint8_t*>(data.data()), data.size(), hex);
  return hex;
}

Result<std::string> NewId() {
  unsigned char b[6];
  if (getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) return SysError("getrandom", "sandbox id");
  return Hex(b, sizeof b);
}

std::string CheckName(const std::string& name) {
  if (name.empty() || name.size() > 63) return "a name has 1 to 63 characters";
  if (!isalnum(static_cast<unsigned char>(name[0]))) return "a name starts with a letter or digit";
  for (char ch : name) {
    if (!isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '.' && ch != '-') {
      return "a name holds only letters, digits, '_', '.' and '-'";
    }
  }
  return "";
}

Result<SandboxRecord> LoadRecord(const std::string& dir) {
  auto text = ReadFile(dir + "/sandbox.json");
  if (!text) return Error{Error::Code::kNoSandbox, "no sandbox record in \"" + dir + "\""};
  nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object()) return Error::Setup("\"" + dir + "/sandbox.json\": not a JSON object (damaged record)");
  SandboxRecord r;
  try {
    r.id = j.at("id");
    r.name = j.at("name");
    r.agent = j.value("agent", "");
    r.created = j.value("created", "");
    r.policy = j.at("policy").dump();
    r.policy_digest = j.value("policyDigest", "");
    r.workspace = j.value("workspace", "");
    r.dns_servers = j.value("dnsServers", std::vector<std::string>{});
    r.state = j.at("state");
    r.failure = j.value("failure", "");
    r.supervisor = j.value("supervisorPid", 0);
    r.started = j.value("started", "");
    r.audit_db = j.value("auditStore", "");
    r.audit_off = j.value("auditOff", "");
  } catch (const std::exception& e) {
    return Error::Setup("\"" + dir + "/sandbox.json\": " + e.what() + " (damaged record)");
  }
  return r;
}

// Writes `text` to DIR/NAME through a file beside it renamed into place:
// a reader sees the old file or the new one, never a part, whenever ward
// is killed. Not fsync'ed: the runtime directory is volatile by design
// (a tmpfs: /run, $XDG_RUNTIME_DIR), and no supervisor it describes
// survives a power loss; a flush to disk where it is not a tmpfs cost
// each provision and start 0.3-1 ms here.
static Result<void> WriteReplacing(const std::string& dir, const std::string& name, const std::string& text) {
  const std::string tmp = dir + "/." + name + "." + std::to_string(getpid());
  UniqueFd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd.valid()) return SysError("open", tmp);
  if (write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    int e = errno;
    unlink(tmp.c_str());
    return SysError("write", tmp, e);
  }
  fd.Reset();
  if (rename(tmp.c_str(), (dir + "/" + name).c_str()) != 0) {
    int e = errno;
    unlink(tmp.c_str());
    return Error::Setup("rename \"" + tmp + "\": " + ErrnoName(e));
  }
  return {};
}

Result<std::vector<net::DnsBinding>> LoadBindings(const std::string& dir) {
  const std::string path = dir + "/dns-bindings.json";
  std::vector<net::DnsBinding> out;
  struct stat st;
  if (lstat(path.c_str(), &st) != 0 && errno == ENOENT) return out;
  auto text = ReadFile(path);
  if (!text) return Error::Setup("cannot read \"" + path + "\"");
  try {
    const nlohmann::json j = nlohmann::json::parse(*text);
    if (j.at("version") != 1) return Error::Setup("\"" + path + "\": unknown version");
    for (const auto& b : j.at("bindings")) {
      auto address = net::IpAddress::Parse(b.at("address").get<std::string>());
      std::string name = b.at("name");
      if (!address || name.empty() || name.size() > 253) {
        return Error::Setup("\"" + path + "\": not an address and a name: " + b.dump());
      }
      if (out.size() < net::kMaxDnsBindings) out.push_back({*address, std::move(name)});
    }
  } catch (const std::exception& e) {
    return Error::Setup("\"" + path + "\": " + e.what() + " (damaged)");
  }
  return out;
}

Result<void> SaveBindings(const std::string& dir, const std::vector<net::DnsBinding>& bindings) {
  nlohmann::json list = nlohmann::json::array();
  for (const net::DnsBinding& b : bindings) list.push_back({{"address", b.address.ToString()}, {"name", b.name}});
  return WriteReplacing(dir, "dns-bindings.json", nlohmann::json{{"version", 1}, {"bindings", list}}.dump() + "\n");
}

Result<void> SaveRecord(const std::string& dir, const SandboxRecord& r) {
  nlohmann::json j = {{"id", r.id},
                      {"name", r.name},
                      {"agent", r.agent},
                      {"created", r.created},
                      {"policy", nlohmann::json::parse(r.policy)},
                      {"policyDigest", r.policy_digest},
                      {"workspace", r.workspace},
                      {"dnsServers", r.dns_servers},
                      {"state", r.state}};
  if (!r.failure.empty()) j["failure"] = r.failure;
  if (r.supervisor) j["supervisorPid"] = r.supervisor;
  if (!r.started.empty()) j["started"] = r.started;
  if (!r.audit_db.empty()) j["auditStore"] = r.audit_db;
  if (!r.audit_off.empty()) j["auditOff"] = r.audit_off;
  return WriteReplacing(dir, "sandbox.json", j.dump(2) + "\n");
}

Result<StoreLock> StoreLock::Take(const std::string& runtime) {
  StoreLock l;
  const std::string path = runtime + "/.lock";
  l.fd_.Reset(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!l.fd_.valid()) return SysError("open", path);
  if (flock(l.fd_.get(), LOCK_EX) != 0) return SysError("flock", path);
  return l;
}

Result<std::string> FindSandbox(const std::string& runtime, const std::string& ref) {
  auto none = [&] {
    return Error{Error::Code::kNoSandbox, "no sandbox named or numbered \"" + ref + "\" (see `ward ls`)"};
  };
  if (!CheckName(ref).empty()) return none();
  struct stat st;
  const std::string by_id = runtime + "/" + ref;
  if (ref != "names" && lstat(by_id.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return by_id;
  char target[64];
  ssize_t n = readlink((runtime + "/names/" + ref).c_str(), target, sizeof target - 1);
  if (n <= 0) return none();
  target[n] = 0;
  if (!CheckName(target).empty()) return none();
  const std::string dir = runtime + "/" + target;
  if (lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return none();
  return dir;
}

std::vector<std::string> AllSandboxes(const std::string& runtime) {
  std::vector<std::string> out;
  DIR* d = opendir(runtime.c_str());
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    if (e->d_type != DT_DIR || e->d_name[0] == '.' || std::strcmp(e->d_name, "names") == 0) continue;
    out.push_back(runtime + "/" + e->d_name);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

void RemoveTree(int parent, const char* name) {
  int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == EACCES) {
    // A directory of the caller's it may not read (the sandbox made it
    // mode 0): opened for its owner.
    if (fchmodat(parent, name, 0700, AT_SYMLINK_NOFOLLOW) == 0) {
      fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
  }
  if (fd >= 0) {
    (void)fchmod(fd, 0700);  // its entries removable (it goes too)
    if (DIR* d = fdopendir(fd)) {
      while (dirent* e = readdir(d)) {
        if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        if (unlinkat(fd, e->d_name, 0) != 0 && (errno == EISDIR || errno == EPERM)) RemoveTree(fd, e->d_name);
      }
      closedir(d);
    } else {
      close(fd);
    }
  }
  unlinkat(parent, name, AT_REMOVEDIR);
}

Result<void> RemoveSandbox(const std::string& runtime, const SandboxRecord& r) {
  const std::string link = runtime + "/names/" + r.name;
  char target[64];
  ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
  if (n > 0 && std::string(target, static_cast<size_t>(n)) == r.id) unlink(link.c_str());
  int root = open(runtime.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return SysError("open", runtime);
  RemoveTree(root, r.id.c_str());
  close(root);
  struct stat st;
  if (lstat((runtime + "/" + r.id).c_str(), &st) == 0) {
    return Error::Setup("could not remove every file of sandbox " + r.id + " under \"" + runtime + "/" + r.id + "\"");
  }
  return {};
}

Result<void> RefuseControlSocket(const std::string& path, dev_t dev, ino_t ino) {
  auto refuse = [&] {
    return Error::Policy("filesystem.unix \"" + path +
                         "\": a held sandbox's control socket, which no sandbox may reach");
  };
  // By name: a socket called ctl beside a sandbox record.
  const size_t slash = path.rfind('/');
  struct stat st;
  if (slash != std::string::npos && path.substr(slash + 1) == "ctl" &&
      lstat((path.substr(0, slash) + "/sandbox.json").c_str(), &st) == 0) {
    return refuse();
  }
  // By inode: every control socket in the caller's runtime directory (a
  // hard link is another name for the same socket).
  auto rt = RuntimeDir(/*make=*/false);
  if (!rt) return {};  // no runtime directory: no control socket of the caller's
  for (const std::string& dir : AllSandboxes(*rt)) {
    if (stat((dir + "/ctl").c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino) return refuse();
  }
  return {};
}

Result<void> RefuseControlSockets(const LaunchPlan& plan) {
  for (const UnixEndpoint& e : plan.unix_endpoints) {
    if (!e.fifo) WARD_TRY(RefuseControlSocket(e.path, e.dev, e.ino));
  }
  return {};
}

std::vector<std::string> WardStateDirs(const std::string& audit_db) {
  std::vector<std::string> dirs;
  // Made now if missing: a directory that appeared after this sandbox
  // started would not be hidden from it (a sandbox with a grant above it
  // could read and rewrite the records made there later). One that cannot
  // be made holds nothing to hide; every held-sandbox command then fails.
  if (auto rt = RuntimeDir(/*make=*/true)) dirs.push_back(*rt);
  auto chosen = audit::PathOrDefault(audit_db);
  const std::string db = chosen ? *chosen : "";
  if (const size_t slash = db.rfind('/'); slash != std::string::npos) {
    char real[PATH_MAX];
    const std::string dir = slash == 0 ? "/" : db.substr(0, slash);
    struct stat st;
    if (realpath(dir.c_str(), real) && stat(real, &st) == 0 && S_ISDIR(st.st_mode)) dirs.push_back(real);
  }
  return PathsShowing(dirs);
}

Result<UniqueFd> ConnectControl(const std::string& dir, int* err) {
  UniqueFd s(socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!s.valid()) return SysError("socket", "AF_UNIX");
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  const std::string path = dir + "/ctl";
  if (path.size() >= sizeof a.sun_path) {
    return Error{Error::Code::kRuntimeDir, "control socket path \"" + path + "\" is too long for a unix socket"};
  }
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  if (connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    *err = errno;
    return SysError("connect", path);
  }
  return s;
}

}  // namespace ward::lifecycle
