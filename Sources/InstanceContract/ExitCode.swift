/// Exit codes of the contract: what `vtarget` returns and what a shim's
/// status reports as the run's end.
public enum ExitCode {
    public static let success: Int32 = 0
    public static let failure: Int32 = 1
    public static let badInput: Int32 = 2
}
