package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardstrap/hardstrap/internal/config"
	"github.com/hardstrap/hardstrap/stages"
)

func TestVersion(t *testing.T) {
	r := hardstrap(t, "--version")
	if r.Code != exitOK {
		t.Fatalf("--version: %s", r)
	}

	if want := "hardstrap version " + version + "\n"; r.Stdout != want {
		t.Errorf("--version printed %q, want %q", r.Stdout, want)
	}

	if r.Stderr != "" {
		t.Errorf("--version wrote to stderr: %q", r.Stderr)
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string // substrings of stdout
	}{
		{
			name: "app --help", args: []string{"--help"},
			want: append([]string{
				"Exit codes: 0 success or no changes, 1 failure, 2 bad usage or invalid config",
				"3 with 'plan --detailed-exitcode'",
				"init", "plan", "apply", "completion",
			}, stages.Names()...),
		},
		{name: "app -h", args: []string{"-h"}, want: []string{"USAGE:", "Exit codes:"}},
		{name: "no arguments", args: nil, want: []string{"USAGE:", "Exit codes:"}},
		{name: "help", args: []string{"help"}, want: []string{"USAGE:", "Exit codes:"}},
		{name: "help plan", args: []string{"help", "plan"}, want: []string{"hardstrap plan - ", "--detailed-exitcode"}},
		{
			name: "plan --help", args: []string{"plan", "--help"},
			want: []string{"hardstrap plan - ", "--detailed-exitcode", "exit 3", "--only", "--skip", "--file", "-o", "text or json"},
		},
		{name: "apply --help", args: []string{"apply", "--help"}, want: []string{"hardstrap apply - ", "--dry-run", "talos"}},
		{name: "apply -h", args: []string{"apply", "-h"}, want: []string{"hardstrap apply - "}},
		{name: "init --help", args: []string{"init", "--help"}, want: []string{"--force", "--stdout"}},
		{name: "talos", args: []string{"talos"}, want: []string{"patch"}},
		{name: "talos patch --help", args: []string{"talos", "patch", "--help"}, want: []string{"--out", "--in-place", "--patch", "FILE..."}},
		{name: "help after a file", args: []string{"talos", "patch", "controlplane.yaml", "--help"}, want: []string{"--in-place"}},
		{name: "completion --help", args: []string{"completion", "--help"}, want: []string{"bash", "zsh", "fish"}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()

			r := hardstrap(t, tt.args...)
			if r.Code != exitOK {
				t.Fatalf("want exit 0: %s", r)
			}

			for _, w := range tt.want {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, r.Stdout)
				}
			}

			if r.Stderr != "" {
				t.Errorf("help wrote to stderr: %q", r.Stderr)
			}
		})
	}
}

// TestUsageErrors: every command-line mistake exits 2 with one "Error: ..." on stderr that
// says what to do, and nothing on stdout.
func TestUsageErrors(t *testing.T) {
	ws := newWorkspace(t, styleLegacy, "")
	cpBefore := stat(t, ws.CP)

	tests := []struct {
		name string
		args []string
		want []string // substrings of stderr
	}{
		{name: "unknown command", args: []string{"nosuch"}, want: []string{`unknown command "nosuch"`, "plan", "--help"}},
		{name: "misspelt command", args: []string{"plna"}, want: []string{`unknown command "plna"`, `did you mean "plan"?`}},
		{name: "help on an unknown command", args: []string{"-h", "nosuch"}, want: []string{`unknown command "nosuch"`}},
		{name: "unknown talos subcommand", args: []string{"talos", "nosuch"}, want: []string{`unknown command "nosuch"`, "'hardstrap talos'", "patch"}},
		{name: "unknown global flag", args: []string{"--nosuch"}, want: []string{"unknown flag --nosuch", "--help"}},
		{name: "unknown plan flag", args: []string{"plan", "--nosuch", "-f", ws.Config}, want: []string{"unknown flag --nosuch for 'hardstrap plan'", "hardstrap plan --help"}},
		{name: "unknown short flag", args: []string{"apply", "-x", "-f", ws.Config}, want: []string{"unknown flag -x"}},
		// -v is verbose for commands; it must not be a global alias of --version that
		// prints the version and exits 0 without running apply.
		{name: "-v before the command", args: []string{"-v", "apply", "-f", ws.Config}, want: []string{"unknown flag -v"}},
		{name: "flag without value", args: []string{"plan", "-f"}, want: []string{"-f"}},
		{name: "-o yaml", args: []string{"plan", "-o", "yaml", "-f", ws.Config}, want: []string{`"yaml"`, "text or json"}},
		{name: "apply -o yaml", args: []string{"apply", "-o", "yaml", "-f", ws.Config}, want: []string{"text or json"}},
		{name: "plan argument", args: []string{"plan", "-f", ws.Config, "extra"}, want: []string{`unexpected argument "extra"`, "-f FILE"}},
		{name: "--only nosuch", args: []string{"plan", "-f", ws.Config, "--only", "nosuch"}, want: []string{`"nosuch"`, "--only", "valid stages are talos"}},
		{name: "--skip nosuch", args: []string{"apply", "-f", ws.Config, "--skip", "nosuch"}, want: []string{`"nosuch"`, "--skip", "valid stages are talos"}},
		{name: "--only a list with one unknown", args: []string{"plan", "-f", ws.Config, "--only", "talos,nosuch"}, want: []string{`"nosuch"`, "valid stages are talos"}},
		{name: "--only and --skip leave nothing", args: []string{"apply", "-f", ws.Config, "--only", "talos", "--skip", "talos"}, want: []string{"no stage to run"}},
		{name: "completion powershell", args: []string{"completion", "powershell"}, want: []string{`"powershell"`, "bash, zsh or fish"}},
		{name: "completion without shell", args: []string{"completion"}, want: []string{"bash", "zsh", "fish"}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := hardstrap(t, tt.args...)
			if r.Code != exitUsage {
				t.Fatalf("want exit %d: %s", exitUsage, r)
			}

			if !strings.HasPrefix(r.Stderr, "Error: ") || strings.Count(r.Stderr, "Error: ") != 1 {
				t.Errorf("stderr should hold one \"Error: ...\": %q", r.Stderr)
			}

			for _, w := range tt.want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr lacks %q: %q", w, r.Stderr)
				}
			}

			if r.Stdout != "" {
				t.Errorf("a usage error wrote to stdout: %q", r.Stdout)
			}
		})
	}

	assertUnchanged(t, ws.CP, cpBefore)

	if b := backups(t, ws.CP); len(b) != 0 {
		t.Errorf("usage errors left backups: %v", b)
	}
}

func TestInit(t *testing.T) {
	t.Parallel()

	example := config.Example()
	if len(example) == 0 {
		t.Fatal("config.Example() is empty")
	}

	t.Run("writes the example", func(t *testing.T) {
		t.Parallel()

		path := filepath.Join(t.TempDir(), "hardstrap.yaml")

		r := hardstrap(t, "init", "-f", path)
		if r.Code != exitOK {
			t.Fatalf("init: %s", r)
		}

		if got := readFile(t, path); !bytes.Equal(got, example) {
			t.Errorf("init wrote %d bytes that differ from the example (%d bytes)", len(got), len(example))
		}

		if !strings.Contains(r.Stdout, path) || !strings.Contains(r.Stdout, "hardstrap plan") {
			t.Errorf("init should name the file and the next step: %q", r.Stdout)
		}

		if r.Stderr != "" {
			t.Errorf("stderr: %q", r.Stderr)
		}
	})

	t.Run("refuses to overwrite without --force", func(t *testing.T) {
		t.Parallel()

		path := filepath.Join(t.TempDir(), "hardstrap.yaml")
		writeFile(t, path, []byte("# mine\n"), 0o600)
		before := stat(t, path)

		r := hardstrap(t, "init", "-f", path)
		if r.Code != exitUsage {
			t.Fatalf("second init: want exit %d: %s", exitUsage, r)
		}

		for _, w := range []string{path, "already exists", "--force"} {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("stderr lacks %q: %q", w, r.Stderr)
			}
		}

		if r.Stdout != "" {
			t.Errorf("stdout: %q", r.Stdout)
		}

		assertUnchanged(t, path, before)
	})

	t.Run("init twice", func(t *testing.T) {
		t.Parallel()

		path := filepath.Join(t.TempDir(), "hardstrap.yaml")

		if r := hardstrap(t, "init", "-f", path); r.Code != exitOK {
			t.Fatalf("first init: %s", r)
		}

		before := stat(t, path)

		if r := hardstrap(t, "init", "-f", path); r.Code != exitUsage || !strings.Contains(r.Stderr, "--force") {
			t.Fatalf("second init: want exit 2 naming --force: %s", r)
		}

		assertUnchanged(t, path, before)
	})

	t.Run("--force overwrites", func(t *testing.T) {
		t.Parallel()

		path := filepath.Join(t.TempDir(), "hardstrap.yaml")
		writeFile(t, path, bytes.Repeat([]byte("# a longer file than the example\n"), 1000), 0o644)

		r := hardstrap(t, "init", "--force", "-f", path)
		if r.Code != exitOK {
			t.Fatalf("init --force: %s", r)
		}

		if got := readFile(t, path); !bytes.Equal(got, example) {
			t.Errorf("init --force left %d bytes, want the %d-byte example (truncated?)", len(got), len(example))
		}
	})

	t.Run("--stdout", func(t *testing.T) {
		t.Parallel()

		dir := t.TempDir()
		path := filepath.Join(dir, "hardstrap.yaml")

		r := hardstrap(t, "init", "--stdout", "-f", path)
		if r.Code != exitOK {
			t.Fatalf("init --stdout: %s", r)
		}

		if r.Stdout != string(example) {
			t.Errorf("init --stdout printed something other than the example:\n%s", r.Stdout)
		}

		if r.Stderr != "" {
			t.Errorf("stderr: %q", r.Stderr)
		}

		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("init --stdout wrote %s (stat: %v)", path, err)
		}
	})

	t.Run("--stdout with an existing file", func(t *testing.T) {
		t.Parallel()

		path := filepath.Join(t.TempDir(), "hardstrap.yaml")
		writeFile(t, path, []byte("# mine\n"), 0o644)
		before := stat(t, path)

		if r := hardstrap(t, "init", "--stdout", "-f", path); r.Code != exitOK || r.Stdout != string(example) {
			t.Fatalf("init --stdout: %s", r)
		}

		assertUnchanged(t, path, before)
	})

	t.Run("missing directory", func(t *testing.T) {
		t.Parallel()

		path := filepath.Join(t.TempDir(), "no", "such", "hardstrap.yaml")

		r := hardstrap(t, "init", "-f", path)
		if r.Code != exitFailure {
			t.Fatalf("want exit %d: %s", exitFailure, r)
		}

		if !strings.Contains(r.Stderr, path) {
			t.Errorf("stderr should name %s: %q", path, r.Stderr)
		}
	})

	t.Run("example drives plan", func(t *testing.T) {
		t.Parallel()

		ws := newWorkspace(t, styleMultiDoc, "# replaced by init\n")
		if err := os.Remove(ws.Config); err != nil {
			t.Fatal(err)
		}

		if r := hardstrap(t, "init", "-f", ws.Config); r.Code != exitOK {
			t.Fatalf("init: %s", r)
		}

		if r := hardstrap(t, "plan", "--detailed-exitcode", "-f", ws.Config); r.Code != exitChanges {
			t.Fatalf("plan on the example config: want exit %d: %s", exitChanges, r)
		}
	})
}

func TestCompletion(t *testing.T) {
	tests := []struct {
		shell string
		want  []string
	}{
		{shell: "bash", want: []string{"complete ", "hardstrap", "--generate-bash-completion"}},
		{shell: "zsh", want: []string{"#compdef hardstrap", "bashcompinit", "complete "}},
		{shell: "fish", want: []string{"complete -c hardstrap", "plan", "apply"}},
	}

	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			t.Parallel()

			r := hardstrap(t, "completion", tt.shell)
			if r.Code != exitOK {
				t.Fatalf("completion %s: %s", tt.shell, r)
			}

			if strings.TrimSpace(r.Stdout) == "" {
				t.Fatalf("completion %s printed nothing", tt.shell)
			}

			for _, w := range tt.want {
				if !strings.Contains(r.Stdout, w) {
					t.Errorf("completion %s lacks %q", tt.shell, w)
				}
			}

			if r.Stderr != "" {
				t.Errorf("stderr: %q", r.Stderr)
			}
		})
	}
}

// TestCompletionCandidates: the scripts call back into hardstrap with
// --generate-bash-completion. urfave/cli reads the word being completed from os.Args, so
// this test sets os.Args and must not run in parallel with others.
func TestCompletionCandidates(t *testing.T) {
	saved := os.Args
	t.Cleanup(func() { os.Args = saved })

	for _, c := range []struct {
		args []string
		want []string
	}{
		{args: []string{"--generate-bash-completion"}, want: []string{"init", "plan", "apply", "talos", "completion"}},
		{args: []string{"talos", "--generate-bash-completion"}, want: []string{"patch"}},
		{args: []string{"plan", "-", "--generate-bash-completion"}, want: []string{"--detailed-exitcode", "--only", "--skip", "-o"}},
		{args: []string{"talos", "patch", "--in", "--generate-bash-completion"}, want: []string{"--in-place"}},
	} {
		os.Args = append([]string{"hardstrap"}, c.args...)

		r := hardstrap(t, c.args...)
		if r.Code != exitOK {
			t.Errorf("%v: %s", c.args, r)
			continue
		}

		for _, w := range c.want {
			if !slices.Contains(strings.Fields(r.Stdout), w) {
				t.Errorf("%v: candidates lack %q: %q", c.args, w, r.Stdout)
			}
		}
	}
}

// TestInterspersed: flags after a command's arguments are read as flags, like kubectl does.
func TestInterspersed(t *testing.T) {
	app := newApp(&bytes.Buffer{}, &bytes.Buffer{})

	tests := []struct {
		in, want string
	}{
		{in: "hardstrap", want: "hardstrap"},
		{in: "hardstrap plan -f x.yaml", want: "hardstrap plan -f x.yaml"},
		{in: "hardstrap talos patch cp.yaml", want: "hardstrap talos patch -- cp.yaml"},
		{in: "hardstrap talos patch cp.yaml w.yaml --out dir", want: "hardstrap talos patch --out dir -- cp.yaml w.yaml"},
		{in: "hardstrap talos patch cp.yaml -i --patch p.yaml -v", want: "hardstrap talos patch -i --patch p.yaml -v -- cp.yaml"},
		{in: "hardstrap talos patch cp.yaml --in-place=false", want: "hardstrap talos patch --in-place=false -- cp.yaml"},
		{in: "hardstrap talos patch --out=dir cp.yaml", want: "hardstrap talos patch --out=dir -- cp.yaml"},
		{in: "hardstrap talos patch -- -odd.yaml --out", want: "hardstrap talos patch -- -odd.yaml --out"},
		{in: "hardstrap completion bash", want: "hardstrap completion -- bash"},
		{in: "hardstrap nosuch --out x", want: "hardstrap nosuch --out x"},
		{in: "hardstrap talos patch cp.yaml --help", want: "hardstrap talos patch --help"},
		{in: "hardstrap talos patch -h cp.yaml w.yaml", want: "hardstrap talos patch --help"},
		{in: "hardstrap talos patch cp.yaml --generate-bash-completion", want: "hardstrap talos patch cp.yaml --generate-bash-completion"},
	}

	for _, tt := range tests {
		if got := strings.Join(interspersed(app, strings.Fields(tt.in)), " "); got != tt.want {
			t.Errorf("interspersed(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{name: "nil", err: nil, want: exitOK},
		{name: "changes", err: errChanges, want: exitChanges},
		{name: "usage", err: usageError{os.ErrInvalid}, want: exitUsage},
		{name: "invalid config", err: config.ErrInvalid, want: exitUsage},
		{name: "unknown stage", err: stages.ErrUnknownStage, want: exitUsage},
		{name: "other", err: os.ErrPermission, want: exitFailure},
	}

	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("%s: exitCode = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestInterrupted: a cancelled context (Ctrl-C) stops before any stage and changes nothing.
func TestInterrupted(t *testing.T) {
	t.Parallel()

	ws := newWorkspace(t, styleLegacy, "")
	before := stat(t, ws.CP)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	var out, errb bytes.Buffer

	code := runLocked(ctx, []string{"hardstrap", "apply", "-f", ws.Config}, &out, &errb)
	if code != exitFailure {
		t.Fatalf("want exit %d, got %d; stderr %q", exitFailure, code, errb.String())
	}

	if !strings.Contains(errb.String(), "context canceled") {
		t.Errorf("stderr should say the run was cancelled: %q", errb.String())
	}

	assertUnchanged(t, ws.CP, before)
}
