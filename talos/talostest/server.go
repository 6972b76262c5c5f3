package talostest

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	machineapi "github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Request is one ApplyConfiguration call as the server received it.
type Request struct {
	// Node is the "node" metadata (client.WithNode): the node the call is for.
	Node string
	// Nodes is the "nodes" metadata (the deprecated client.WithNodes).
	Nodes []string
	// Data is the machine config sent.
	Data []byte
	// Mode is the requested apply mode.
	Mode machineapi.ApplyConfigurationRequest_Mode
	// DryRun is true for dry-run requests.
	DryRun bool
	// TryTimeout is the try-mode timeout sent; 0 when none was.
	TryTimeout time.Duration
	// ClientCN is the common name of the client certificate the call came with.
	ClientCN string
}

// FailMode says which requests for a node an injected failure applies to.
type FailMode int

// Failure modes for Server.Fail.
const (
	// FailApplies fails real (non-dry-run) applies.
	FailApplies FailMode = 1 << iota
	// FailDryRuns fails dry-run requests.
	FailDryRuns
	// FailAll fails every request.
	FailAll = FailApplies | FailDryRuns
)

type failure struct {
	mode FailMode
	err  error
}

// Server is a fake Talos machined implementing MachineService.ApplyConfiguration. It keeps,
// per node (the "node" metadata of a call), the config the node runs. A dry run answers with
// Talos' "Dry run summary" text and a line diff against that config ("No changes." when equal);
// a real apply stores the config. Data containing "invalid" is rejected with InvalidArgument,
// as a node rejects a config that does not validate. It is safe for concurrent use.
type Server struct {
	machineapi.UnimplementedMachineServiceServer

	mu       sync.Mutex
	configs  map[string][]byte // node -> config it runs
	requests []Request
	warnings []string // sent back on real applies
	failures map[string]failure
}

// NewServer returns a fake machined that is not serving yet (see Serve and Start); most tests
// want Start.
func NewServer() *Server {
	return &Server{configs: map[string][]byte{}, failures: map[string]failure{}}
}

// Config returns a copy of the config node runs; nil when it runs none.
func (s *Server) Config(node string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()

	return slices.Clone(s.configs[node])
}

// SetConfig makes node run data, as if it had been applied before the test.
func (s *Server) SetConfig(node string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.configs[node] = slices.Clone(data)
}

// Requests returns a copy of every ApplyConfiguration request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()

	return slices.Clone(s.requests)
}

// SetWarnings sets the warnings the server sends back with every successful real apply.
func (s *Server) SetWarnings(warnings ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.warnings = slices.Clone(warnings)
}

// Fail makes the requests for node that mode selects fail with err; a nil err is a gRPC
// FailedPrecondition error naming the node. The request is still recorded, and a failed
// apply leaves the node's config as it was. Fail(node, 0, nil) removes the failure.
func (s *Server) Fail(node string, mode FailMode, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if mode == 0 {
		delete(s.failures, node)
		return
	}

	if err == nil {
		err = status.Errorf(codes.FailedPrecondition, "talostest: injected failure for node %s", node)
	}

	s.failures[node] = failure{mode: mode, err: err}
}

// ApplyConfiguration implements MachineService.ApplyConfiguration.
func (s *Server) ApplyConfiguration(ctx context.Context, in *machineapi.ApplyConfigurationRequest) (*machineapi.ApplyConfigurationResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)

	rec := Request{
		Nodes:  md.Get("nodes"),
		Data:   slices.Clone(in.GetData()),
		Mode:   in.GetMode(),
		DryRun: in.GetDryRun(),
	}
	if n := md.Get("node"); len(n) > 0 {
		rec.Node = n[0]
	}

	if in.GetTryModeTimeout() != nil {
		rec.TryTimeout = in.GetTryModeTimeout().AsDuration()
	}

	if p, ok := peer.FromContext(ctx); ok {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.PeerCertificates) > 0 {
			rec.ClientCN = ti.State.PeerCertificates[0].Subject.CommonName
		}
	}

	s.mu.Lock()
	s.requests = append(s.requests, rec)
	old := string(s.configs[rec.Node])
	f, failing := s.failures[rec.Node]
	s.mu.Unlock()

	if failing {
		if (rec.DryRun && f.mode&FailDryRuns != 0) || (!rec.DryRun && f.mode&FailApplies != 0) {
			return nil, f.err
		}
	}

	if strings.Contains(string(in.GetData()), "invalid") {
		return nil, status.Error(codes.InvalidArgument, "config validation failed: invalid document")
	}

	// Mode handling as in Talos' v1alpha1_server.go ApplyConfiguration
	// (this fake node can always apply without a reboot).
	mode := in.GetMode()
	modeDetails := "Applied configuration with a reboot"

	switch mode {
	case machineapi.ApplyConfigurationRequest_TRY, machineapi.ApplyConfigurationRequest_NO_REBOOT:
		modeDetails = "Applied configuration without a reboot"
	case machineapi.ApplyConfigurationRequest_STAGED:
		modeDetails = "Staged configuration to be applied after the next reboot"
	case machineapi.ApplyConfigurationRequest_AUTO:
		mode = machineapi.ApplyConfigurationRequest_NO_REBOOT
		modeDetails = "Applied configuration without a reboot"
	}

	if in.GetDryRun() {
		diff := lineDiff(old, string(in.GetData()))
		if diff == "" {
			diff = "No changes."
		}

		return &machineapi.ApplyConfigurationResponse{
			Messages: []*machineapi.ApplyConfiguration{{
				Mode:        mode,
				ModeDetails: fmt.Sprintf("Dry run summary:\n%s (skipped in dry-run).\nConfig diff:\n\n%s", modeDetails, diff),
			}},
		}, nil
	}

	if mode == machineapi.ApplyConfigurationRequest_TRY {
		timeout := time.Minute
		if in.GetTryModeTimeout() != nil {
			timeout = in.GetTryModeTimeout().AsDuration()
		}

		modeDetails += fmt.Sprintf("\nThe config is applied in 'try' mode and will be automatically reverted back in %s", timeout)
	}

	s.SetConfig(rec.Node, in.GetData())

	s.mu.Lock()
	warnings := slices.Clone(s.warnings)
	s.mu.Unlock()

	return &machineapi.ApplyConfigurationResponse{
		Messages: []*machineapi.ApplyConfiguration{{
			Mode:        mode,
			ModeDetails: modeDetails,
			Warnings:    warnings,
		}},
	}, nil
}

// Serve starts a new Server over mTLS (pki's server certificate; client certificates signed by
// pki's CA required) on 127.0.0.1:0 and returns it with its address. It stops when the test
// ends.
func Serve(t testing.TB, pki *PKI) (*Server, string) {
	t.Helper()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("talostest: listen: %v", err)
	}

	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pki.ServerCert},
		ClientCAs:    pki.CAPool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})))

	fake := NewServer()
	machineapi.RegisterMachineServiceServer(srv, fake)

	go srv.Serve(lis) //nolint:errcheck // ends with Stop

	t.Cleanup(srv.Stop)

	return fake, lis.Addr().String()
}

// lineDiff is a small LCS line diff in unified style ("--- a", "+++ b", then
// " ", "-" and "+" lines; a removed line comes before the line that replaces it),
// like the text Talos' configdiff produces. It is "" when a and b are equal.
func lineDiff(a, b string) string {
	if a == b {
		return ""
	}

	al := strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	bl := strings.Split(strings.TrimSuffix(b, "\n"), "\n")

	if a == "" {
		al = nil
	}

	lcs := make([][]int, len(al)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(bl)+1)
	}

	for i := len(al) - 1; i >= 0; i-- {
		for j := len(bl) - 1; j >= 0; j-- {
			if al[i] == bl[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}

	var sb strings.Builder

	sb.WriteString("--- a\n+++ b\n")

	i, j := 0, 0
	for i < len(al) || j < len(bl) {
		switch {
		case i < len(al) && j < len(bl) && al[i] == bl[j]:
			sb.WriteString(" " + al[i] + "\n")
			i++
			j++
		case j < len(bl) && (i == len(al) || lcs[i][j+1] > lcs[i+1][j]):
			sb.WriteString("+" + bl[j] + "\n")
			j++
		default:
			sb.WriteString("-" + al[i] + "\n")
			i++
		}
	}

	return sb.String()
}
