import VTargetCommands
#if canImport(Glibc)
import Glibc
#endif

exit(await VTarget.runMain(Array(CommandLine.arguments.dropFirst())))
