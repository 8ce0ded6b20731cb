import Foundation
import Glibc
import Testing
@testable import Supervisor

/// What a shim is started with, and the supervisor's own open-file limit.
@Suite struct ShimEnvironmentTests {
    @Test func aShimGetsOneMallocArenaAndNoStackCacheUnlessTheUserSaidOtherwise() {
        let env = Supervisor.shimEnvironment(["PATH": "/usr/bin", "VTARGET_STATE_DIR": "/s"])
        #expect(Set(env) == ["PATH=/usr/bin", "VTARGET_STATE_DIR=/s", "MALLOC_ARENA_MAX=1",
                             "GLIBC_TUNABLES=glibc.pthread.stack_cache_size=0"])
        #expect(Set(Supervisor.shimEnvironment(["MALLOC_ARENA_MAX": "4"])) ==
                ["MALLOC_ARENA_MAX=4", "GLIBC_TUNABLES=glibc.pthread.stack_cache_size=0"])
        // The user's own tunables are kept, and theirs for the stack cache wins.
        #expect(Set(Supervisor.shimEnvironment(["MALLOC_ARENA_MAX": "4", "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"])) ==
                ["MALLOC_ARENA_MAX=4", "GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.pthread.stack_cache_size=0"])
        #expect(Set(Supervisor.shimEnvironment(["MALLOC_ARENA_MAX": "4", "GLIBC_TUNABLES": "glibc.pthread.stack_cache_size=1048576"])) ==
                ["MALLOC_ARENA_MAX=4", "GLIBC_TUNABLES=glibc.pthread.stack_cache_size=1048576"])
    }

    /// 500 shims need more descriptors than the usual soft 1024: the soft limit goes up to the hard one.
    @Test func theOpenFileLimitIsRaisedToTheHardLimit() {
        var before = rlimit()
        #expect(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &before) == 0)
        let raised = Supervisor.raiseOpenFileLimit()
        var after = rlimit()
        #expect(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &after) == 0)
        #expect(raised == after.rlim_cur)
        #expect(after.rlim_cur == before.rlim_max)
        #expect(after.rlim_max == before.rlim_max)
    }

    /// The shim log keeps every run: a shim that died once per restart is quoted for its last run only.
    @Test func lastWordsAreTheLastRunsOnly() throws {
        let path = NSTemporaryDirectory() + "shim-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).log"
        defer { unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        #expect(fd >= 0)
        for run in 1...3 {
            Supervisor.markStart(fd)
            let words = "run \(run): cannot bind\n"
            _ = words.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress, $0.count - 1) }
        }
        Supervisor.markStart(fd)
        close(fd)
        // The last run said nothing yet.
        #expect(Supervisor.lastWords(path) == "")
        let again = open(path, O_WRONLY | O_APPEND)
        _ = "a\nb\n\nc\nd\n".utf8CString.withUnsafeBufferPointer { write(again, $0.baseAddress, $0.count - 1) }
        close(again)
        #expect(Supervisor.lastWords(path) == "; it said: b | c | d")
        // A log from before the markers existed is read as one run.
        try "x\ny\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(Supervisor.lastWords(path) == "; it said: x | y")
        #expect(Supervisor.lastWords(path + ".missing") == "")
    }
}
