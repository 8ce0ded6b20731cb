#ifndef CSPAWN_H
#define CSPAWN_H
#include <sys/types.h>
#include <sys/resource.h>

/// An empty tmpfs mounted over a host directory in the child's own mount
/// namespace, so what the host keeps there is out of sight.
typedef struct cspawn_tmpfs {
    const char *path;            ///< absolute; skipped when it does not exist
    const char *options;         ///< tmpfs data: "size=16m,nr_inodes=4k,mode=1777"
    unsigned long flags;         ///< MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY ...
} cspawn_tmpfs;

/// A host path bound into the minimal root at the same path.
typedef struct cspawn_bind {
    const char *path;            ///< absolute; skipped when it does not exist on the host
    int read_only;
} cspawn_bind;

typedef struct cspawn_rlimit {
    int resource;                ///< RLIMIT_*
    rlim_t soft, hard;
} cspawn_rlimit;

/// Everything the child does between fork and exec is decided here, before fork,
/// so the child only issues system calls (no allocation, no locks, no Swift).
typedef struct cspawn_attr {
    const char *path;            ///< executable, absolute or found by the caller
    char *const *argv;           ///< NULL-terminated
    char *const *envp;           ///< NULL-terminated; the whole environment
    const char *cwd;             ///< NULL keeps the parent's
    const int *fds;              ///< fds[i] becomes fd i in the child; -1 opens /dev/null
    int fd_count;                ///< every fd >= fd_count is closed in the child
    int new_session;             ///< setsid(): own session and process group
    int parent_death_signal;     ///< 0 for none; delivered when the forking thread dies
    int umask_value;             ///< -1 keeps the parent's
    const cspawn_rlimit *rlimits;
    int rlimit_count;
    /// Extra clone flags: CLONE_NEWNET, CLONE_NEWNS (then / is made private),
    /// CLONE_NEWUSER (then the child writes these maps for itself first).
    int namespace_flags;
    /// With CLONE_NEWNS: mounted after `/` is made private and after the
    /// chdir into `cwd`, so the cwd stays reachable (by relative paths)
    /// even when one of these covers it.
    const cspawn_tmpfs *tmpfs;
    int tmpfs_count;
    /// >= 0: an open `cgroup.procs` (cgroup v2) the child writes "0" to
    /// before anything else, so it and all it ever starts are in that group.
    int cgroup_procs_fd;
    /// >= 0: that cgroup v2 directory, where the child is created outright
    /// (clone3 with CLONE_INTO_CGROUP). A write to `cgroup.procs` migrates
    /// the process, which waits out an RCU grace period (5-12 ms here) and
    /// meanwhile holds up every fork and thread start on the machine; a child
    /// born in its group costs none of that. Where the kernel refuses clone3
    /// (before 5.7, or a seccomp filter of a container), the child joins
    /// through `cgroup_procs_fd` instead, which must then be open too.
    int cgroup_dir_fd;
    /// With CLONE_NEWNS, non-zero: instead of covering host trees, the child
    /// pivots into a fresh tmpfs root (read-only once built) holding only
    /// `binds`, `symlinks` (pairs: link path, target), the `tmpfs` list (at
    /// those paths inside it), a fresh /proc for its pid namespace (the
    /// first of `proc_options` the kernel takes; none when none does), and
    /// `cwd` bound writable at its own path when `bind_cwd`.
    int minimal_root;
    int bind_cwd;
    const cspawn_bind *binds;
    int bind_count;
    const char *const *symlinks;
    int symlink_count;
    const char *const *proc_options;
    int proc_option_count;
    const char *uid_map;         ///< "UID UID 1\n": the user, mapped to itself
    const char *gid_map;
    /// When >= 0 (only root can), the child drops to this gid and uid with
    /// `groups` as its supplementary groups (none when 0), which also clears
    /// its capabilities.
    int gid, uid;
    const gid_t *groups;
    int group_count;
    int no_new_privs;
    /// A BPF program (struct sock_filter[], `seccomp_len` entries) built
    /// before fork; installed last, right before exec. NULL for none.
    const void *seccomp_filter;
    int seccomp_len;
} cspawn_attr;

/// Errors from the child carry the step that failed in the high byte, so a
/// refused namespace is told apart from a failed exec.
enum {
    CSPAWN_STEP_EXEC = 0, CSPAWN_STEP_SESSION = 1, CSPAWN_STEP_FDS = 2, CSPAWN_STEP_RLIMIT = 3,
    CSPAWN_STEP_MOUNTS = 4, CSPAWN_STEP_CREDENTIALS = 5, CSPAWN_STEP_DEATHSIG = 6,
    CSPAWN_STEP_NO_NEW_PRIVS = 7, CSPAWN_STEP_SECCOMP = 8, CSPAWN_STEP_CHDIR = 9, CSPAWN_STEP_CLONE = 10,
    CSPAWN_STEP_USER_NAMESPACE = 11, CSPAWN_STEP_CGROUP = 12, CSPAWN_STEP_ROOT = 13,
};

/// Forks and execs. Returns 0 and sets *pid, or an errno value: from fork, or
/// the child's own failure (chdir, exec, ...) reported through a close-on-exec pipe.
int cspawn_spawn(const cspawn_attr *attr, pid_t *pid);

/// A connected AF_UNIX stream socket pair, both ends close-on-exec. Returns errno or 0.
int cspawn_socketpair(int fds[2]);

/// A pipe, both ends close-on-exec. Returns errno or 0.
int cspawn_pipe(int fds[2]);


/// pidfd_open(2): a handle that names this process and no later one with its PID.
int cspawn_pidfd_open(pid_t pid);
/// pidfd_send_signal(2). Returns 0 or -1 with errno.
int cspawn_pidfd_signal(int pidfd, int sig);
/// An epoll set for `PidfdWatch`: epoll_event is packed on x86_64, which
/// Swift cannot import faithfully, so the set is driven from here.
int cspawn_epoll_create(void);
/// Adds `fd` for one readable event (EPOLLIN | EPOLLONESHOT). Returns 0 or -1 with errno.
int cspawn_epoll_add_once(int epfd, int fd);
/// Removes `fd` from the set. Returns 0 or -1 with errno.
int cspawn_epoll_remove(int epfd, int fd);
/// Waits for readable fds (blocking, EINTR retried); writes up to `max` of them to `fds`. Returns their count or -1.
int cspawn_epoll_wait(int epfd, int *fds, int max);
#endif
