import Glibc
import Testing
@testable import Supervisor

/// What a shim is started with, and the supervisor's own open-file limit.
@Suite struct ShimEnvironmentTests {
    @Test func aShimGetsOneMallocArenaUnlessTheUserSaidOtherwise() {
        let env = Supervisor.shimEnvironment(["PATH": "/usr/bin", "VTARGET_STATE_DIR": "/s"])
        #expect(Set(env) == ["PATH=/usr/bin", "VTARGET_STATE_DIR=/s", "MALLOC_ARENA_MAX=1"])
        #expect(Supervisor.shimEnvironment(["MALLOC_ARENA_MAX": "4"]) == ["MALLOC_ARENA_MAX=4"])
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
}
