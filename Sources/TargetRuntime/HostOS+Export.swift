/// The supervisor still names `RuntimeError`, `FileDescriptors` and
/// `RuntimeDirectory` through `import TargetRuntime`, from before they moved
/// to HostOS; it imports HostOS itself once reshaped, and this line goes.
@_exported import HostOS
