#!/usr/bin/env bash
# The pure modules (specs, plans, codecs, formats) hold no I/O: no process,
# file or socket API and no NIOPosix. `make test` fails when one does.
# A module is pure when its README.md says "(pure)" in its title line.
set -euo pipefail
cd "$(dirname "$0")/.."

forbidden_imports='^[[:space:]]*(@_exported[[:space:]]+)?import[[:space:]]+(Glibc|Musl|Darwin|NIOPosix|Dispatch|System|SystemPackage|CSpawn|CSeccomp|Sandbox|HostOS|TargetRuntime|Endpoints)\b'
# Foundation's file, process, environment and network APIs.
forbidden_apis='\b(FileManager|FileHandle|ProcessInfo|Process\(|URLSession|contentsOfFile|contentsOf:|write\(toFile|write\(to:|fopen|popen|getenv|setenv|fork\(|execv|posix_spawn|socket\(|getuid|geteuid)\b'

status=0
pure=()
for readme in Sources/*/README.md; do
    head -n 1 "$readme" | grep -q '(pure)' && pure+=("$(basename "$(dirname "$readme")")")
done
if [ ${#pure[@]} -eq 0 ]; then echo "check-pure-modules: no module README says (pure)" >&2; exit 1; fi
for m in "${pure[@]}"; do
    while IFS= read -r hit; do
        echo "check-pure-modules: $m is pure but $hit" >&2
        status=1
    done < <(grep -nHE "$forbidden_imports|$forbidden_apis" Sources/"$m"/*.swift | grep -vE ':[0-9]+:[[:space:]]*///' || true)
done
[ $status -eq 0 ] && echo "check-pure-modules: ${#pure[@]} pure modules clean (${pure[*]})"
exit $status
