#if canImport(Glibc)
import Glibc
#endif
import HostOS
import InstanceContract
import Sandbox

extension Supervisor {
    /// A shim started before any instance needs it (`vtarget --standby-shim`):
    /// it has paid a process's start and warmed its caches while nothing
    /// waited, and blocks on `pipe` for its `StandbyAssignment`. The next
    /// start takes it instead of spawning; it is then that instance's shim in
    /// every way (pid and start time committed before the go byte, which
    /// follows on the same pipe).
    struct Standby {
        let child: ChildProcess
        /// The write end of its stdin.
        let pipe: Int32
    }

    /// How long starts must pause before the next standby is spawned: its
    /// warm-up takes a core for tens of milliseconds, which a QEMU that just
    /// started (or the next of a burst of starts) should not share.
    static let standbyQuiet: Duration = .milliseconds(200)

    /// Spawns a standby once no start has happened for `standbyQuiet`;
    /// each call pushes that back.
    func scheduleStandby() {
        guard options.standbyShim else { return }
        standbyTimer?.cancel()
        standbyTimer = Task {
            try? await Task.sleep(for: Self.standbyQuiet)
            guard !Task.isCancelled else { return }
            await self.spawnStandby()
        }
    }

    func spawnStandby() async {
        guard standby == nil else { return }
        let child: ChildProcess, pipe: Int32
        do {
            (child, pipe) = try await spawnShim(StandbyAssignment.standbyArguments(), workingDirectory: paths.stateDirectory, output: -1)
        } catch {
            log("cannot start a standby shim (instances start without one): \(error)")
            return
        }
        // Another may have been spawned meanwhile (the actor was free during the spawn):
        // this one then reads end of file and ends.
        guard standby == nil, !Task.isCancelled else {
            close(pipe)
            _ = await child.waitForExit()
            return
        }
        standby = Standby(child: child, pipe: pipe)
    }

    /// The standby, told to become the shim of `assignment`; nil when there
    /// is none, it ended, or the assignment's argv is too long for its title
    /// (then it stays for the next start). The caller owns the returned pipe.
    func takeStandby(for assignment: StandbyAssignment) -> (child: ChildProcess, pipe: Int32)? {
        guard let s = standby, StandbyAssignment.fits(assignment.arguments, executable: options.executable) else { return nil }
        standby = nil
        // Ended (killed, say): its pipe has no reader, and the write fails with EPIPE.
        guard s.child.exitStatus == nil, FileDescriptors.writeAll(s.pipe, assignment.framed()) else {
            close(s.pipe)
            _ = s.child.signal(SIGKILL)
            return nil
        }
        return (s.child, s.pipe)
    }

    /// On a clean stop: the standby ends now rather than when its warm-up
    /// finishes and it reads end of file.
    func dropStandby() async {
        standbyTimer?.cancel()
        standbyTimer = nil
        guard let s = standby else { return }
        standby = nil
        close(s.pipe)
        _ = s.child.signal(SIGTERM)
        _ = await s.child.waitForExit()
    }
}
