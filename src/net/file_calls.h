// The file system calls `ward learn` watches (x86_64 numbers): those that
// name a path. Header-only, shared by the filter that notifies them
// (enforce/seccomp.cc) and the supervisor that reads them
// (net/file_notice.cc, which has a shape for each: FileNotice.EveryCallHasAShape).
#pragma once

#include <sys/syscall.h>

namespace ward::net {

inline constexpr int kFileCalls[] = {
    SYS_open,     SYS_openat,    SYS_openat2,    SYS_creat,    SYS_stat,      SYS_lstat,     SYS_newfstatat,
    SYS_statx,    SYS_access,    SYS_faccessat,  SYS_faccessat2, SYS_chdir,   SYS_readlink,  SYS_readlinkat,
    SYS_truncate, SYS_chmod,     SYS_fchmodat,   SYS_utimensat, SYS_mkdir,    SYS_mkdirat,   SYS_mknod,
    SYS_mknodat,  SYS_symlink,   SYS_symlinkat,  SYS_link,     SYS_linkat,    SYS_rmdir,     SYS_unlink,
    SYS_unlinkat, SYS_rename,    SYS_renameat,   SYS_renameat2,
};

}  // namespace ward::net
