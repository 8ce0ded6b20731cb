SHELL := /bin/bash
# vtarget: `make run` boots the seed example; `make test` runs every test.
SWIFT ?= swift
BUILD_FLAGS ?=
VTARGET := .build/debug/vtarget
RELEASE_VTARGET := .build/release/vtarget
FW := firmware-samples/build
SAMPLES := stm32vldiscovery netduino2 netduinoplus2 lm3s6965evb mps2-an385 mps2-an386 mps2-an500 x86-pc \
           stm32vldiscovery-can-a stm32vldiscovery-can-b netduinoplus2-can-a netduinoplus2-can-b \
           lm3s6965evb-checksum mps2-an385-checksum

.PHONY: all setup build release firmware run test test-guests test-image bench clean image

all: build

setup:
	@bash scripts/setup.sh

build: setup
	$(SWIFT) build $(BUILD_FLAGS)

# The Swift runtime linked statically: start-up drops from ~8 ms to ~6 ms.
release: setup
	$(SWIFT) build -c release --static-swift-stdlib $(BUILD_FLAGS)

# The image the rendered Pods name (render --for kubernetes), as an OCI
# layout in .build/image; no container daemon (scripts/build-image.sh).
# Push it with: skopeo copy oci:.build/image:$(TAG) docker://REGISTRY/vtarget:$(TAG)
IMAGE ?= localhost/vtarget
TAG ?= $(shell sed -n 's/^ *version: "\(.*\)",$$/\1/p' Sources/VTargetCommands/VTarget.swift | head -n1)
image: release
	bash scripts/build-image.sh --binary $(RELEASE_VTARGET) --out .build/image --image $(IMAGE) --tag $(TAG)

firmware: build
	$(MAKE) -s -C firmware-samples BUILD=build
	@# The seed's ConfigMap, made from the STM32 sample the way a user would.
	$(VTARGET) create configmap stm32f4-firmware --from-file=firmware.elf=$(FW)/stm32vldiscovery.elf --dry-run=client -o yaml > $(FW)/stm32f4-firmware.yaml
	@for b in $(SAMPLES); do \
	  $(VTARGET) create configmap $$b-firmware --from-file=firmware.elf=$(FW)/$$b.elf --dry-run=client -o yaml > $(FW)/$$b-firmware.yaml || exit 1; \
	done

# Boots the seed's YAML, unchanged, with its firmware ConfigMap; shows the serial output.
run: build firmware
	$(VTARGET) run -f examples/seed/stm32f4-qemu.yaml -f $(FW)/stm32f4-firmware.yaml --until 'echo ready' --timeout 30s

# Suites that load the machine on purpose or block for long run alone, after
# the rest, and one at a time (--no-parallel): in a parallel run, other suites'
# blocking waits hold the test runner's threads and their QEMUs hold both cores
# (SupervisorRaceTests runs ten clients and kills the supervisor twice in 60 s).
# ReplayTraceTests records a board on a CAN bus: recorded input is paced in
# wall-clock time (PacedInput), and a vCPU starved by a loaded machine can
# miss a byte of a frame, which is what the pacing is there to prevent.
# QMPClientStubTests' stub hangs up after 120 s so that a stuck test ends; in
# the parallel phase its awaits waited out that watchdog behind blocking suites
# in two CI runs in a row (alone, the suite takes 0.1 s).
ALONE := SupervisorRaceTests|QemuImgTests|CloudInitSeedTests|BuildTestGuestScriptTests|ContainerImageTests|ReplayTraceTests|QMPClientStubTests

# The VM tests' guests are built (or found in their cache) while the Swift
# build runs (scripts/test-guests.sh: ~3 min cold, mostly downloads and dpkg)
# and handed to the tests in the environment: a test that ran the script
# itself would block one of the test runner's two threads for as long as it takes.
# The container image's test (ContainerImageTests) gets a debug build linked
# with the static Swift runtime, as the image needs, in a build directory of
# its own (objects compiled for a static link cannot be linked dynamically):
# ~4.5 min on 2 cores, where the release build `make test-image` uses is ~10.
# The real cloud-init guest (debootstrap, which needs root) is built when
# `make test` runs as root, as CI does (~2.5 min cold, then cached); a normal
# user's run uses it only when cached (`sudo scripts/build-test-guest.sh --cloud`).
IMAGE_TEST_BUILD := .build/image-test-build
test-guests: setup
	@bash scripts/test-guests.sh start

test: test-guests build firmware
	@bash scripts/check-pure-modules.sh
	$(SWIFT) build --product vtarget --static-swift-stdlib --scratch-path $(IMAGE_TEST_BUILD) $(BUILD_FLAGS)
	VTARGET_TEST_IMAGE=1; VTARGET_TEST_IMAGE_BINARY="$$PWD/$(IMAGE_TEST_BUILD)/debug/vtarget"; export VTARGET_TEST_IMAGE VTARGET_TEST_IMAGE_BINARY; \
	guests="$$(bash scripts/test-guests.sh wait)" || exit 1; export $$guests; \
	$(SWIFT) test $(BUILD_FLAGS) --skip '$(ALONE)' 2>&1 | tee .build/test.log; status=$${PIPESTATUS[0]}; \
	[ $$status -eq 0 ] || exit $$status; \
	$(SWIFT) test $(BUILD_FLAGS) --skip-build --no-parallel --filter '$(ALONE)' 2>&1 | tee -a .build/test.log; exit $${PIPESTATUS[0]}

# The image end to end (ContainerImageTests) with the release binary, as
# `make image` builds it: pushed to docker-registry on 127.0.0.1, pulled back
# and unpacked; the seed's rendered Pod and its CAN bus run in it. `make test`
# runs the same test with the debug binary (a release build costs ~17 min of
# compiler CPU time); the test itself takes ~20 s once the Debian base is cached.
test-image: release firmware
	$(SWIFT) build --build-tests $(BUILD_FLAGS)
	VTARGET_TEST_IMAGE=1 $(SWIFT) test $(BUILD_FLAGS) --skip-build --filter ContainerImageTests 2>&1 | tee .build/test-image.log; exit $${PIPESTATUS[0]}

bench: release firmware
	VTARGET=$(RELEASE_VTARGET) bash scripts/bench.sh

clean:
	rm -rf .build $(FW)
