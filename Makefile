# hardstrap: build, demo, test.
# Trivy (the image gate) needs encoding/json/v2, so every build uses the jsonv2 experiment.
export GOEXPERIMENT := jsonv2

GO      ?= go
BIN     := bin/hardstrap
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# -s -w: no symbol table or DWARF, a third off the binary (Trivy as a library makes it large).
LDFLAGS := -s -w -X main.version=$(VERSION)
DEMO    := .demo

.PHONY: all build demo demo-down test vet fuzz e2e e2e-kind e2e-vet bench startup clean

all: build

build: ## build bin/hardstrap
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/hardstrap

demo: build ## patch fresh Talos configs, start a local control plane from the result, then apply and verify the policy
	-@$(MAKE) --no-print-directory demo-down >/dev/null 2>&1
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(GO) run ./internal/tools/talosgen -out $(DEMO)
	cp testdata/demo/hardstrap.yaml $(DEMO)/hardstrap.yaml
	@echo
	@echo '$$ hardstrap plan --only talos -f $(DEMO)/hardstrap.yaml     # no cluster yet: the machine configs first'
	@$(BIN) plan --only talos -f $(DEMO)/hardstrap.yaml
	@echo
	@echo '$$ hardstrap apply --only talos -f $(DEMO)/hardstrap.yaml'
	@$(BIN) apply --only talos -f $(DEMO)/hardstrap.yaml
	@echo
	@echo '$$ starting kube-apiserver, kube-controller-manager and etcd from $(DEMO)/controlplane.yaml'
	cd e2e && $(GO) run ./cmd/lab up -dir ../$(DEMO)/cluster -config ../$(DEMO)/controlplane.yaml
	@echo
	@echo '$$ hardstrap apply --skip charts --kubeconfig $(DEMO)/cluster/kubeconfig -f $(DEMO)/hardstrap.yaml   # chart repositories are out of reach offline'
	@$(BIN) apply --skip charts --kubeconfig $(DEMO)/cluster/kubeconfig -f $(DEMO)/hardstrap.yaml
	@echo
	@echo '$$ hardstrap plan --skip charts --kubeconfig $(DEMO)/cluster/kubeconfig -f $(DEMO)/hardstrap.yaml --detailed-exitcode   # a re-run has nothing to do'
	@$(BIN) plan --skip charts --kubeconfig $(DEMO)/cluster/kubeconfig -f $(DEMO)/hardstrap.yaml --detailed-exitcode
	@echo
	@echo '$$ hardstrap verify --kubeconfig $(DEMO)/cluster/kubeconfig -f $(DEMO)/hardstrap.yaml'
	@$(BIN) verify --kubeconfig $(DEMO)/cluster/kubeconfig -f $(DEMO)/hardstrap.yaml
	@echo
	@echo 'The control plane keeps running: KUBECONFIG=$(DEMO)/cluster/kubeconfig. Stop it with: make demo-down'

demo-down: ## stop the demo control plane
	cd e2e && $(GO) run ./cmd/lab down -dir ../$(DEMO)/cluster

test: vet ## unit and integration tests (no cluster needed)
	$(GO) test -count=1 ./...

vet:
	$(GO) vet ./...

# Each fuzz target runs for FUZZTIME, one after another (go test fuzzes one target at a time);
# a target that fails does not stop the others, and make fails at the end. Their seed corpora,
# and the crashers kept in testdata/fuzz/, run in `make test` as ordinary tests.
# FUZZMINIMIZETIME bounds how long each new input is shrunk: go's default (60s) spends most of a
# short run minimizing in the packages that link Kubernetes' API types.
FUZZTIME         ?= 60s
FUZZMINIMIZETIME ?= 5s
FUZZ_TARGETS     := FuzzParse:./internal/config FuzzPatch:./talos FuzzParseSecret:./secrets/sealing FuzzCheck:./policy/podsecurity

fuzz: ## run every fuzz target for FUZZTIME (default 60s); a crasher is kept in its package's testdata/fuzz/
	@failed=; for t in $(FUZZ_TARGETS); do \
		name=$${t%%:*}; pkg=$${t#*:}; \
		echo "$(GO) test -run '^$$' -fuzz '^$$name$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) $$pkg || failed="$$failed $$name"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed (the failing inputs are in testdata/fuzz/ of their packages)"; exit 1; fi

# The e2e module builds what its provider needs on first use (`lab build`: Kubernetes from source,
# for kind also the offline node image) and keeps it in $(E2E_CACHE) (override with
# HARDSTRAP_E2E_CACHE) and in Docker; E2E_PROVIDER=local|kind|talos. The builds run before
# `go test`, with no deadline: the test timeout covers the tests only.
E2E_CACHE ?= $(HOME)/.cache/hardstrap/e2e
export HARDSTRAP_E2E_CACHE ?= $(E2E_CACHE)
export E2E_PROVIDER

e2e: e2e-vet ## end-to-end scenario against a real control plane
	cd e2e && $(GO) run ./cmd/lab build
	cd e2e && $(GO) test -count=1 -timeout 40m ./...

e2e-kind: ## the scenario on real nodes: an offline kind cluster (needs Docker; builds the node image once)
	$(MAKE) --no-print-directory e2e E2E_PROVIDER=kind

e2e-vet:
	cd e2e && $(GO) vet ./...

bench: ## benchmarks (performance goals live here, not in tests), including apply against the e2e control plane
	$(GO) test -run '^$$' -bench . -benchmem ./...
	cd e2e && $(GO) test -run '^$$' -bench . -benchtime 5x ./scenario

startup: ## stripped binary size, median --version and plan --only talos wall time, package init total and top 10 (N runs)
	scripts/startup.sh

clean:
	rm -rf bin $(DEMO)
