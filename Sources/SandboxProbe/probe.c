/*
 * vtarget-sandbox-probe: run through vtarget's sandbox (vtarget sandbox-exec,
 * vtarget doctor), it tries every system call the sandbox denies, with
 * arguments that change nothing, and reports what it got. Unconfined, the
 * same calls fail for ordinary reasons (EINVAL, ENOENT, EBADF...) or work;
 * confined, each gets EPERM. It also reports who it runs as, its open fds
 * and its environment, so tests can check what leaks into a QEMU, and its
 * file system view: which host files exist for it, its root's type and the
 * processes its /proc shows.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

static void report(const char *name, long rc) {
    if (rc >= 0) printf("syscall %s ok\n", name);
    else if (errno == EPERM) printf("syscall %s EPERM\n", name);
    else printf("syscall %s errno=%d\n", name, errno);
}

int main(void) {
    char line[256];
    FILE *status = fopen("/proc/self/status", "r");
    while (status && fgets(line, sizeof line, status)) {
        if (!strncmp(line, "Uid:", 4) || !strncmp(line, "CapEff:", 7) || !strncmp(line, "CapBnd:", 7) || !strncmp(line, "NoNewPrivs:", 11) || !strncmp(line, "Seccomp:", 8))
            printf("status %s", line);
    }
    if (status) fclose(status);
    /* The namespaces it is in, for the doctor to compare with its own. */
    const char *kinds[] = { "net", "mnt", "pid", "ipc", "uts", "user" };
    for (unsigned k = 0; k < sizeof kinds / sizeof *kinds; k++) {
        char path[64], target[128];
        snprintf(path, sizeof path, "/proc/self/ns/%s", kinds[k]);
        ssize_t n = readlink(path, target, sizeof target - 1);
        target[n > 0 ? n : 0] = 0;
        printf("ns %s %s\n", kinds[k], target);
    }
    printf("fds");
    DIR *d = opendir("/proc/self/fd");
    int self = d ? dirfd(d) : -1;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] != '.' && atoi(e->d_name) != self) printf(" %s", e->d_name);
    }
    if (d) closedir(d);
    printf("\n");
    for (char **v = environ; *v; v++) printf("env %s\n", *v);

    /* Its file system view: which host files it can name, what its root
       is, and which processes its /proc shows. */
    const char *paths[] = { "/etc/shadow", "/etc/passwd", "/etc/hostname", "/home", "/root", "/run", "/var/lib", "/sys", "/usr/bin" };
    for (unsigned k = 0; k < sizeof paths / sizeof *paths; k++)
        printf("path %s %s\n", paths[k], access(paths[k], F_OK) == 0 ? "present" : "absent");
    char root_type[64] = "unknown";
    FILE *mounts = fopen("/proc/self/mountinfo", "r");
    char mline[1024];
    while (mounts && fgets(mline, sizeof mline, mounts)) {
        char point[512], type[64];
        const char *dash = strstr(mline, " - ");
        if (sscanf(mline, "%*s %*s %*s %*s %511s", point) == 1 && dash && sscanf(dash + 3, "%63s", type) == 1 && !strcmp(point, "/"))
            snprintf(root_type, sizeof root_type, "%s", type); /* the last mount on / is the one seen */
    }
    if (mounts) fclose(mounts);
    printf("root %s\n", root_type);
    int pids = 0, others = 0;
    DIR *proc = opendir("/proc");
    while (proc && (e = readdir(proc))) {
        int n = atoi(e->d_name);
        if (n <= 0) continue;
        pids++;
        if (n != getpid()) others++;
    }
    if (proc) closedir(proc);
    printf("proc %s pids %d others %d self %d\n", proc ? "mounted" : "absent", pids, others, (int)getpid());
    char cmd[256] = "";
    FILE *c1 = fopen("/proc/1/cmdline", "r");
    size_t got = c1 ? fread(cmd, 1, sizeof cmd - 1, c1) : 0;
    cmd[got] = 0;
    if (c1) fclose(c1);
    printf("proc 1 cmdline %s\n", c1 ? cmd : "(unreadable)");

    report("ptrace", syscall(SYS_ptrace, 0x4242, getpid(), 0, 0));
    /* syscall(2) is variadic: an int 0 leaves the upper half of a long argument to chance. */
    report("process_vm_readv", syscall(SYS_process_vm_readv, (long)getpid(), NULL, 0L, NULL, 0L, 0L));
    report("process_vm_writev", syscall(SYS_process_vm_writev, (long)getpid(), NULL, 0L, NULL, 0L, 0L));
    report("mount", syscall(SYS_mount, "none", "/nonexistent-vtarget", "tmpfs", 0, NULL));
    report("umount2", syscall(SYS_umount2, "/nonexistent-vtarget", 0));
    report("pivot_root", syscall(SYS_pivot_root, "/nonexistent-vtarget", "/nonexistent-vtarget"));
    report("chroot", syscall(SYS_chroot, "/nonexistent-vtarget"));
    report("unshare", syscall(SYS_unshare, 0));
    report("setns", syscall(SYS_setns, -1, 0));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, NULL, 0xdeadbeef));
    report("kexec_file_load", syscall(SYS_kexec_file_load, -1, -1, 0, NULL, 0xdeadbeef));
    report("init_module", syscall(SYS_init_module, NULL, 0, ""));
    report("finit_module", syscall(SYS_finit_module, -1, "", 0));
    report("delete_module", syscall(SYS_delete_module, "vtarget_no_such_module", 0));
    report("bpf", syscall(SYS_bpf, -1, NULL, 0));
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    report("keyctl", syscall(SYS_keyctl, -1, 0, 0, 0, 0));
    report("add_key", syscall(SYS_add_key, NULL, NULL, NULL, 0, 0));
    report("request_key", syscall(SYS_request_key, NULL, NULL, NULL, 0));
    report("userfaultfd", syscall(SYS_userfaultfd, -1));
    report("reboot", syscall(SYS_reboot, 0, 0, 0, NULL));
    report("swapon", syscall(SYS_swapon, "/nonexistent-vtarget", 0));
    report("swapoff", syscall(SYS_swapoff, "/nonexistent-vtarget"));
    /* Reaching other processes: the parent stands in for another instance's QEMU. */
    report("pidfd_open", syscall(SYS_pidfd_open, getppid(), 0));
    report("pidfd_getfd", syscall(SYS_pidfd_getfd, -1, 0, 0));
    report("pidfd_send_signal", syscall(SYS_pidfd_send_signal, -1, 0, NULL, 0));
    report("process_madvise", syscall(SYS_process_madvise, -1, NULL, 0, 0, 0));
    report("kcmp", syscall(SYS_kcmp, getpid(), getpid(), 0, 0, 0));
    report("kill", syscall(SYS_kill, getppid(), 0));
    int inet = socket(AF_INET, SOCK_STREAM, 0);
    printf("socket inet %s\n", inet >= 0 ? "ok" : (errno == EAFNOSUPPORT ? "EAFNOSUPPORT" : strerror(errno)));
    int unix_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    printf("socket unix %s\n", unix_fd >= 0 ? "ok" : strerror(errno));
    int devnull = open("/dev/null", O_RDONLY);
    printf("open /dev/null %s\n", devnull >= 0 ? "ok" : strerror(errno));
    return 0;
}
