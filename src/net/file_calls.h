// The file system calls `ward learn` watches (x86_64 numbers): those that
// name a path. Header-only, shared by the filter that notifies them
// (enforce/seccomp.cc) and the supervisor that reads them
// (net/file_notice.cc, which has a shape for each: FileNotice.EveryCallHasAShape).
#pragma once

#include <sys/syscall.h>

namespace ward::net {

// Newer than Debian 12's headers (Linux 6.1): fchmodat2 (6.6), the *xattrat
// calls (6.13), file_getattr/file_setattr (6.17). On an older kernel the
// numbers are never called (ENOSYS before the filter matters).
inline constexpr int kSysFchmodat2 = 452, kSysSetxattrat = 463, kSysGetxattrat = 464, kSysListxattrat = 465,
                     kSysRemovexattrat = 466, kSysFileGetattr = 468, kSysFileSetattr = 469;

inline constexpr int kFileCalls[] = {
    SYS_open,     SYS_openat,    SYS_openat2,    SYS_creat,    SYS_stat,      SYS_lstat,     SYS_newfstatat,
    SYS_statx,    SYS_access,    SYS_faccessat,  SYS_faccessat2, SYS_chdir,   SYS_readlink,  SYS_readlinkat,
    SYS_truncate, SYS_chmod,     SYS_fchmodat,   SYS_utimensat, SYS_mkdir,    SYS_mkdirat,   SYS_mknod,
    SYS_mknodat,  SYS_symlink,   SYS_symlinkat,  SYS_link,     SYS_linkat,    SYS_rmdir,     SYS_unlink,
    SYS_unlinkat, SYS_rename,    SYS_renameat,   SYS_renameat2,
    SYS_chown,    SYS_lchown,    SYS_fchownat,   SYS_utime,    SYS_utimes,    SYS_futimesat, SYS_statfs,
    SYS_getxattr, SYS_lgetxattr, SYS_listxattr,  SYS_llistxattr, SYS_setxattr, SYS_lsetxattr, SYS_removexattr,
    SYS_lremovexattr, SYS_inotify_add_watch, kSysFchmodat2, kSysSetxattrat, kSysGetxattrat, kSysListxattrat,
    kSysRemovexattrat, kSysFileGetattr, kSysFileSetattr,
};

}  // namespace ward::net
