#define _GNU_SOURCE
#include "cspawn.h"
#include <errno.h>
#include <sys/epoll.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sched.h>
#include <grp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <pthread.h>
#include <unistd.h>

#ifndef SYS_close_range
#define SYS_close_range 436
#endif

static void child_fail_at(int errfd, int step, int err) {
    err |= step << 24;
    ssize_t r;
    do { r = write(errfd, &err, sizeof err); } while (r < 0 && errno == EINTR);
    _exit(127);
}

static int write_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, text, strlen(text));
    int e = errno;
    close(fd);
    errno = e;
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static void child_fail(int errfd, int err) {
    ssize_t r;
    do { r = write(errfd, &err, sizeof err); } while (r < 0 && errno == EINTR);
    _exit(127);
}

/* dst = a + b, within cap; -1 (ENAMETOOLONG) when it does not fit. */
static int join(char *dst, size_t cap, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 > cap) { errno = ENAMETOOLONG; return -1; }
    memcpy(dst, a, la);
    memcpy(dst + la, b, lb + 1);
    return 0;
}

/* mkdir -p: every parent of `path` as a directory, `path` itself as a
   directory or, when `file`, an empty file (a mount point for a file). */
static int make_path(char *path, int file) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        int r = mkdir(path, 0755);
        *p = '/';
        if (r < 0 && errno != EEXIST) return -1;
    }
    if (!file) return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

/* A bind mount made read-only. The flags the source mount already has
   (nosuid, nodev, noexec, atime) are kept: in a user namespace they are
   locked, and a remount that drops one fails with EPERM. */
static int remount_read_only(const char *path) {
    struct statfs sf;
    if (statfs(path, &sf) < 0) return -1;
    unsigned long f = MS_BIND | MS_REMOUNT | MS_RDONLY;
    if (sf.f_flags & ST_NOSUID) f |= MS_NOSUID;
    if (sf.f_flags & ST_NODEV) f |= MS_NODEV;
    if (sf.f_flags & ST_NOEXEC) f |= MS_NOEXEC;
    if (sf.f_flags & ST_NOATIME) f |= MS_NOATIME;
    if (sf.f_flags & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (sf.f_flags & ST_RELATIME) f |= MS_RELATIME;
    return mount(NULL, path, NULL, f, NULL);
}

/* The child's whole file system view: a fresh tmpfs, mounted over /tmp of
   its own namespace (any existing directory would do) and pivoted into,
   with the old root kept at /.old only while the binds are taken from it.
   The cwd (entered before) is bound as ".", so a tmpfs over its host path
   never matters. */
static void enter_minimal_root(const cspawn_attr *a, int errfd) {
    char path[4096], src[4096];
#define ROOT_FAIL() child_fail_at(errfd, CSPAWN_STEP_ROOT, errno)
    umask(022);
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755") < 0) ROOT_FAIL();
    if (mkdir("/tmp/.old", 0700) < 0) ROOT_FAIL();
    if (syscall(SYS_pivot_root, "/tmp", "/tmp/.old") < 0) ROOT_FAIL();
    /* tmpfs first: /dev must exist before its nodes are bound onto it. */
    for (int i = 0; i < a->tmpfs_count; i++) {
        const cspawn_tmpfs *t = &a->tmpfs[i];
        if (join(path, sizeof path, t->path, "") < 0 || make_path(path, 0) < 0) ROOT_FAIL();
        if (mount("tmpfs", path, "tmpfs", t->flags, t->options) < 0) ROOT_FAIL();
    }
    for (int i = 0; i < a->bind_count; i++) {
        const cspawn_bind *b = &a->binds[i];
        struct stat st;
        if (join(src, sizeof src, "/.old", b->path) < 0 || join(path, sizeof path, b->path, "") < 0) ROOT_FAIL();
        if (stat(src, &st) < 0) {
            if (errno == ENOENT || errno == ENOTDIR) continue;
            ROOT_FAIL();
        }
        if (make_path(path, !S_ISDIR(st.st_mode)) < 0) ROOT_FAIL();
        if (mount(src, path, NULL, MS_BIND | MS_REC, NULL) < 0) ROOT_FAIL();
        if (b->read_only && remount_read_only(path) < 0) ROOT_FAIL();
    }
    for (int i = 0; i + 1 < 2 * a->symlink_count; i += 2) {
        if (join(path, sizeof path, a->symlinks[i], "") < 0) ROOT_FAIL();
        char *slash = strrchr(path, '/');
        if (slash && slash != path) {
            *slash = 0;
            if (make_path(path, 0) < 0) ROOT_FAIL();
            *slash = '/';
        }
        if (symlink(a->symlinks[i + 1], path) < 0 && errno != EEXIST) ROOT_FAIL();
    }
    if (a->bind_cwd && a->cwd && strcmp(a->cwd, "/") != 0) {
        if (join(path, sizeof path, a->cwd, "") < 0 || make_path(path, 0) < 0) ROOT_FAIL();
        if (mount(".", path, NULL, MS_BIND | MS_REC, NULL) < 0) ROOT_FAIL();
    }
    /* Its own /proc, while the host's is still in this namespace (a user
       namespace may mount proc only where one is already visible). */
    if (mkdir("/proc", 0555) < 0) ROOT_FAIL();
    for (int i = 0; i < a->proc_option_count; i++) {
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, a->proc_options[i]) == 0) break;
    }
    if (umount2("/.old", MNT_DETACH) < 0 || rmdir("/.old") < 0) ROOT_FAIL();
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) ROOT_FAIL();
    if (chdir(a->cwd ? a->cwd : "/") < 0) child_fail_at(errfd, CSPAWN_STEP_CHDIR, errno);
#undef ROOT_FAIL
}

/// Runs in the child, which shares the parent's memory until exec (vfork
/// semantics): system calls only, nothing written outside its own stack.
static void child_main(const cspawn_attr *a, int errfd, pid_t parent) {
    /* Every signal is blocked (by the parent, before clone). Reset the
       dispositions first, so no parent handler can run in this shared
       address space; ignored ones would also survive exec (the Swift
       runtime ignores SIGPIPE). Only then unblock. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < 65; s++) {
        if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, NULL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Into its cgroup first: nothing it starts can be outside it. */
    if (a->cgroup_procs_fd >= 0) {
        ssize_t w;
        do { w = write(a->cgroup_procs_fd, "0", 1); } while (w < 0 && errno == EINTR);
        if (w != 1) child_fail_at(errfd, CSPAWN_STEP_CGROUP, w < 0 ? errno : EIO);
    }
    if ((a->namespace_flags & CLONE_NEWUSER) && a->uid_map && a->gid_map) {
        /* A new user namespace starts with no ids: map the user to itself.
           setgroups must be denied before an unprivileged gid_map. */
        if (write_file("/proc/self/setgroups", "deny") < 0 || write_file("/proc/self/gid_map", a->gid_map) < 0
            || write_file("/proc/self/uid_map", a->uid_map) < 0)
            child_fail_at(errfd, CSPAWN_STEP_USER_NAMESPACE, errno);
    }
    if (a->new_session && setsid() < 0) child_fail_at(errfd, CSPAWN_STEP_SESSION, errno);
    /* Move every source fd and the error pipe above the target range first,
       so that placing fd i never clobbers a source still needed. */
    int high = a->fd_count + 3;
    int moved_err = fcntl(errfd, F_DUPFD_CLOEXEC, high + a->fd_count + 8);
    if (moved_err < 0) child_fail_at(errfd, CSPAWN_STEP_FDS, errno);
    errfd = moved_err;
    int staged[256];
    if (a->fd_count > 256) child_fail_at(errfd, CSPAWN_STEP_FDS, EINVAL);
    for (int i = 0; i < a->fd_count; i++) {
        int src = a->fds[i];
        if (src < 0) {
            src = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (src < 0) child_fail_at(errfd, CSPAWN_STEP_FDS, errno);
        }
        staged[i] = fcntl(src, F_DUPFD_CLOEXEC, high);
        if (staged[i] < 0) child_fail_at(errfd, CSPAWN_STEP_FDS, errno);
    }
    for (int i = 0; i < a->fd_count; i++) {
        if (dup2(staged[i], i) < 0) child_fail_at(errfd, CSPAWN_STEP_FDS, errno); /* dup2 clears CLOEXEC */
    }
    /* Close everything but the planned fds and the error pipe (CLOEXEC anyway). */
    if (syscall(SYS_close_range, (unsigned)a->fd_count, (unsigned)errfd - 1, 0) < 0) {
        for (int fd = a->fd_count; fd < errfd; fd++) close(fd);
    }
    syscall(SYS_close_range, (unsigned)errfd + 1, ~0U, 0);
    for (int i = 0; i < a->rlimit_count; i++) {
        struct rlimit rl = { a->rlimits[i].soft, a->rlimits[i].hard };
        if (setrlimit(a->rlimits[i].resource, &rl) < 0) child_fail_at(errfd, CSPAWN_STEP_RLIMIT, errno);
    }
    /* In a new mount namespace, nothing mounted here propagates back. */
    if ((a->namespace_flags & CLONE_NEWNS) && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        child_fail_at(errfd, CSPAWN_STEP_MOUNTS, errno);
    /* The executable, before a tmpfs may cover it (a QEMU in ~/.local/bin,
       a stand-in in /tmp): exec'd from this fd. A script's interpreter
       opens it again as /dev/fd/N, so for one it stays open across exec. */
    int exec_fd = -1;
    if ((a->namespace_flags & CLONE_NEWNS) && (a->tmpfs_count > 0 || a->minimal_root)) {
        exec_fd = open(a->path, O_RDONLY | O_CLOEXEC);
        if (exec_fd >= 0) {
            char magic[2];
            if (pread(exec_fd, magic, 2, 0) == 2 && magic[0] == '#' && magic[1] == '!') fcntl(exec_fd, F_SETFD, 0);
        } else {
            exec_fd = open(a->path, O_PATH | O_CLOEXEC); /* execute-only: not a script */
            if (exec_fd < 0) child_fail(errfd, errno);
        }
    }
    /* The cwd first: a tmpfs below may cover the path that led to it. */
    if (a->cwd && chdir(a->cwd) < 0) child_fail_at(errfd, CSPAWN_STEP_CHDIR, errno);
    if ((a->namespace_flags & CLONE_NEWNS) && a->minimal_root) {
        enter_minimal_root(a, errfd);
        /* Exec'd by its path when the new root has that very file (QEMU in
           /usr: its /proc/self/exe then names a path that exists, where it
           looks for its firmware), else from the fd. */
        struct stat in_root, opened;
        if (exec_fd >= 0 && stat(a->path, &in_root) == 0 && fstat(exec_fd, &opened) == 0
            && in_root.st_dev == opened.st_dev && in_root.st_ino == opened.st_ino) {
            close(exec_fd);
            exec_fd = -1;
        }
    } else if (a->namespace_flags & CLONE_NEWNS) {
        for (int i = 0; i < a->tmpfs_count; i++) {
            const cspawn_tmpfs *t = &a->tmpfs[i];
            if (mount("tmpfs", t->path, "tmpfs", t->flags, t->options) < 0 && errno != ENOENT)
                child_fail_at(errfd, CSPAWN_STEP_MOUNTS, errno);
        }
    }
    if (a->umask_value >= 0) umask((mode_t)a->umask_value);
    /* Root dropping to another uid: empty the capability bounding set first
       (it needs CAP_SETPCAP, gone after setresuid), so nothing the child
       execs can ever regain a capability. */
    if (a->uid >= 0) {
        for (int cap = 0; cap < 64; cap++) {
            if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) child_fail_at(errfd, CSPAWN_STEP_CREDENTIALS, errno);
        }
    }
    /* Raw system calls, as glibc's own posix_spawn makes them: the libc
       wrappers would run glibc's all-threads credential change (setxid),
       which takes a lock in, and signals the threads of, the parent whose
       memory this child shares. The kernel changes only this task's
       credentials, and this child is a process of one thread. */
    if (a->uid >= 0) {
        if (syscall(SYS_setgroups, (size_t)a->group_count, a->group_count > 0 ? a->groups : NULL) < 0)
            child_fail_at(errfd, CSPAWN_STEP_CREDENTIALS, errno);
        if (syscall(SYS_setresgid, (gid_t)a->gid, (gid_t)a->gid, (gid_t)a->gid) < 0) child_fail_at(errfd, CSPAWN_STEP_CREDENTIALS, errno);
        if (syscall(SYS_setresuid, (uid_t)a->uid, (uid_t)a->uid, (uid_t)a->uid) < 0) child_fail_at(errfd, CSPAWN_STEP_CREDENTIALS, errno);
    }
    /* After the credentials change, which clears the parent-death signal. */
    if (a->parent_death_signal) {
        if (prctl(PR_SET_PDEATHSIG, a->parent_death_signal) < 0) child_fail_at(errfd, CSPAWN_STEP_DEATHSIG, errno);
        /* the parent died before prctl; in a new pid namespace the parent is outside it and reads as 0 */
        if (getppid() != ((a->namespace_flags & CLONE_NEWPID) ? 0 : parent)) _exit(127);
    }
    if (a->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail_at(errfd, CSPAWN_STEP_NO_NEW_PRIVS, errno);
    if (a->seccomp_filter) {
        struct sock_fprog prog = { (unsigned short)a->seccomp_len, (struct sock_filter *)a->seccomp_filter };
        if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) child_fail_at(errfd, CSPAWN_STEP_SECCOMP, errno);
    }
    if (exec_fd >= 0) syscall(SYS_execveat, exec_fd, "", a->argv, a->envp, AT_EMPTY_PATH);
    else execve(a->path, a->argv, a->envp);
    child_fail(errfd, errno);
}

struct child_args {
    const cspawn_attr *attr;
    int errfd;
    pid_t parent;
};

static int child_entry(void *raw) {
    struct child_args *c = raw;
    child_main(c->attr, c->errfd, c->parent);
    return 127;
}

/* clone3's arguments (linux/sched.h's struct clone_args, spelled out so
   that header need not meet glibc's sched.h). */
struct cspawn_clone_args {
    unsigned long long flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#define CSPAWN_CLONE_INTO_CGROUP 0x200000000ULL

/* clone3(CLONE_VFORK | CLONE_INTO_CGROUP), fork-like: without CLONE_VM a
   raw clone3 cannot hand the child a stack of its own, so the child runs on
   a copy of the parent's pages (only the calling thread's, until exec; the
   parent's thread waits meanwhile). Returns the pid, 0 in the child, or -1. */
static pid_t clone_into_cgroup(const cspawn_attr *a) {
#ifdef SYS_clone3
    struct cspawn_clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_VFORK | CSPAWN_CLONE_INTO_CGROUP | (unsigned long long)(unsigned)a->namespace_flags;
    ca.exit_signal = SIGCHLD;
    ca.cgroup = (unsigned long long)a->cgroup_dir_fd;
    return (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
#else
    (void)a;
    errno = ENOSYS;
    return -1;
#endif
}

/* clone(CLONE_VM | CLONE_VFORK) as posix_spawn does: no copy of the
   parent's page tables (vtarget's are large), and the parent resumes only
   once the child has exec'd or died. The child runs on its own stack. */
#define CHILD_STACK (64 * 1024)

int cspawn_spawn(const cspawn_attr *a, pid_t *pid) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) return errno;
    void *stack = mmap(NULL, CHILD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        int e = errno;
        close(p[0]); close(p[1]);
        return e;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    struct child_args args = { a, p[1], getpid() };
    pid_t child = -1;
    int clone_errno = ENOSYS;
    if (a->cgroup_dir_fd >= 0) {
        cspawn_attr born_inside = *a;  /* nothing left to join */
        born_inside.cgroup_procs_fd = -1;
        child = clone_into_cgroup(a);
        if (child == 0) {
            child_main(&born_inside, p[1], args.parent);
            _exit(127);
        }
        clone_errno = errno;
    }
    /* Refused clone3 (old kernel, a container's filter): join by cgroup.procs. */
    if (child < 0 && (clone_errno == ENOSYS || clone_errno == E2BIG || clone_errno == EPERM || clone_errno == EINVAL)) {
        child = clone(child_entry, (char *)stack + CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD | a->namespace_flags, &args);
        clone_errno = errno;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    munmap(stack, CHILD_STACK);
    if (child < 0) {
        close(p[0]); close(p[1]);
        return clone_errno | (CSPAWN_STEP_CLONE << 24);
    }
    close(p[1]);
    int err = 0;
    ssize_t r;
    do { r = read(p[0], &err, sizeof err); } while (r < 0 && errno == EINTR);
    close(p[0]);
    if (r == (ssize_t)sizeof err) {
        int status;
        while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
        return err ? err : ECHILD;
    }
    *pid = child;
    return 0;
}

int cspawn_socketpair(int fds[2]) {
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0 ? errno : 0;
}

int cspawn_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC) < 0 ? errno : 0;
}

int cspawn_pidfd_open(pid_t pid) {
    return (int)syscall(434 /* SYS_pidfd_open */, pid, 0);
}

int cspawn_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int cspawn_epoll_add_once(int epfd, int fd) {
    struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.fd = fd };
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int cspawn_epoll_remove(int epfd, int fd) {
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
}

int cspawn_epoll_wait(int epfd, int *fds, int max) {
    struct epoll_event events[64];
    if (max > 64) max = 64;
    int n;
    do { n = epoll_wait(epfd, events, max, -1); } while (n < 0 && errno == EINTR);
    for (int i = 0; i < n; i++) fds[i] = events[i].data.fd;
    return n;
}

int cspawn_pidfd_signal(int pidfd, int sig) {
    return (int)syscall(424 /* SYS_pidfd_send_signal */, pidfd, sig, NULL, 0);
}
