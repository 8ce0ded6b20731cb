#if canImport(Glibc)
import Glibc
#endif

/// Seconds on the monotonic clock, for deadlines: wall-clock jumps (NTP,
/// a suspended laptop) must not end a timeout early or late.
public func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}
