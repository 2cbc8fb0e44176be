package cli_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/machsend/machsend/internal/buildtest"
)

// TestBinaries runs the four real binaries: help goes to stdout with exit
// 0, usage errors to stderr with exit 2 and a pointer to the help, and
// every binary has --version, completion and a man page. Nothing here
// needs root, a lab or the network.
func TestBinaries(t *testing.T) {
	bin := buildtest.Commands(t, "machsend", "rendezvous", "natlab", "experiment")
	tests := []struct {
		cmd            string
		code           int
		stdout, stderr string // substrings ("" : must be empty)
	}{
		{"machsend", 2, "", "usage: machsend COMMAND"},
		{"machsend --help", 0, "web", ""},
		{"machsend -h", 0, "natcheck", ""},
		{"machsend help", 0, "send", ""},
		{"machsend help send", 0, "usage: machsend send [flags] PATH...", ""},
		{"machsend help get", 0, "--only", ""},
		{"machsend send --help", 0, "--keep", ""},
		{"machsend web -h", 0, "--install-handler", ""},
		{"machsend send", 2, "", "machsend send: name the files or folders to share\nRun 'machsend help send' for usage."},
		{"machsend send --bogus x", 2, "", "flag provided but not defined: -bogus"},
		{"machsend send --at-once 0 x", 2, "", "--at-once 0"},
		{"machsend get a b", 2, "", "one link at a time"},
		{"machsend web a b", 2, "", "at most one link"},
		{"machsend natcheck extra", 2, "", `unexpected argument "extra"`},
		{"machsend get not-a-link", 1, "", "malformed machsend link"},
		{"machsend get 7-guitar-notaword", 2, "", "not one of the code words"},
		{"machsend get 7-guitar-orbit", 2, "", "no rendezvous server: pass --server HOST:PORT"},
		{"machsend send --code --keep x", 2, "", "--code serves one receiver"},
		{"machsend bogus", 2, "", `unknown command "bogus"`},
		{"machsend help bogus", 2, "", `unknown command "bogus"`},
		{"machsend version", 0, "machsend ", ""},
		{"machsend --version", 0, "machsend ", ""},
		{"machsend completion bash", 0, "complete -o filenames -F _machsend machsend", ""},
		{"machsend man", 0, ".TH MACHSEND 1", ""},
		{"rendezvous --help", 0, "--relay", ""},
		{"rendezvous -h", 0, "--max-per-addr", ""},
		{"rendezvous --bogus", 2, "", "rendezvous: flag provided but not defined: -bogus\nRun 'rendezvous --help' for usage."},
		{"rendezvous stray", 2, "", `unexpected argument "stray"`},
		{"rendezvous --secondary nonsense", 2, "", `--secondary "nonsense": want IP:PORT`},
		{"rendezvous --log-level loud", 2, "", "--log-level"},
		{"rendezvous --listen 192.0.2.2:3478 --dual-stack 192.0.2.3:3478 --check-config", 2, "", "give an address in the other family than --listen"},
		{"rendezvous --dual-stack [2001:db8::2]:3478 --check-config", 2, "", "must be specific addresses, not 0.0.0.0 or ::"},
		{"rendezvous --listen 192.0.2.2:3478 --dual-stack [2001:db8::2]:3478 --check-config", 0, "configuration ok", ""},
		{"rendezvous --version", 0, "rendezvous ", ""},
		{"rendezvous man", 0, ".TH RENDEZVOUS 1", ""},
		{"rendezvous completion bash", 0, "_rendezvous", ""},
		{"natlab", 2, "", "usage: natlab COMMAND"},
		{"natlab --help", 0, "impair", ""},
		{"natlab help down", 0, "usage: natlab down LAB", ""},
		{"natlab down --help", 0, "usage: natlab down LAB", ""},
		{"natlab down", 2, "", "natlab down: want LAB\nRun 'natlab help down' for usage."},
		{"natlab profiles stray", 2, "", `unexpected argument "stray"`},
		{"natlab exec lab", 2, "", "want LAB NODE -- CMD"},
		{"natlab bogus", 2, "", `unknown command "bogus"`},
		{"natlab version", 0, "natlab ", ""},
		{"natlab man", 0, ".TH NATLAB 1", ""},
		{"experiment", 2, "", "usage: experiment COMMAND"},
		{"experiment --help", 0, "browser", ""},
		{"experiment help", 0, "invariance", ""},
		{"experiment help run", 0, "--shard", ""},
		{"experiment run --help", 0, "--allow-dirty", ""},
		{"experiment report stray", 2, "", `unexpected argument "stray"`},
		{"experiment merge only-one", 2, "", "want OUT SHARD_DIR..."},
		{"experiment run --out not-results --shard 5/2", 2, "", "shard"},
		{"experiment bogus", 2, "", `unknown command "bogus"`},
		{"experiment completion zsh", 0, "bashcompinit", ""},
		{"experiment man", 0, ".TH EXPERIMENT 1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.cmd, func(t *testing.T) {
			args := strings.Fields(tc.cmd)
			cmd := exec.Command(filepath.Join(bin, args[0]), args[1:]...)
			cmd.Env = append(os.Environ(), "MACHSEND_SERVER=", "MACHSEND_LINK=", "XDG_CONFIG_HOME="+t.TempDir())
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errOut.String())
			}
			for _, c := range []struct{ name, got, want string }{{"stdout", out.String(), tc.stdout}, {"stderr", errOut.String(), tc.stderr}} {
				if c.want == "" && c.got != "" || !strings.Contains(c.got, c.want) {
					t.Errorf("%s = %q, want it to contain %q", c.name, c.got, c.want)
				}
			}
		})
	}
}

// TestConfigFileServer: with no --server and no MACHSEND_SERVER, a code
// goes to the server of the configuration file.
func TestConfigFileServer(t *testing.T) {
	bin := buildtest.Commands(t, "machsend")
	cfg := t.TempDir()
	if err := os.MkdirAll(filepath.Join(cfg, "machsend"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "machsend", "config"), []byte("# my server\nserver = 127.0.0.1:9   # nothing listens\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "machsend"), "get", "7-guitar-orbit")
	cmd.Env = append(os.Environ(), "MACHSEND_SERVER=", "XDG_CONFIG_HOME="+cfg)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "127.0.0.1:9") {
		t.Fatalf("%v: %s", err, out)
	}
}

// TestVersionStamp: the version make dist stamps in (-X main.version) is
// what --version prints, in every binary.
func TestVersionStamp(t *testing.T) {
	dir := t.TempDir()
	names := []string{"machsend", "rendezvous", "natlab", "experiment"}
	args := []string{"build", "-ldflags", "-X main.version=v9.8.7-test", "-o", dir}
	for _, n := range names {
		args = append(args, "github.com/machsend/machsend/cmd/"+n)
	}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, n := range names {
		out, err := exec.Command(filepath.Join(dir, n), "--version").Output()
		if err != nil || string(out) != n+" v9.8.7-test\n" {
			t.Errorf("%s --version: %q, %v", n, out, err)
		}
	}
}
