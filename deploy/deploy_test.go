package deploy

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/machsend/machsend/internal/buildtest"
)

// unitFile reads a systemd unit into key -> values (a key may repeat).
func unitFile(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: not KEY=VALUE: %q", path, line)
		}
		out[k] = append(out[k], v)
	}
	return out
}

// envFile reads KEY=VALUE lines.
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	return env
}

// expand does systemd's ${VAR} (one word) and $VAR (split into words).
func expand(cmd string, env map[string]string) []string {
	cmd = regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllStringFunc(cmd, func(m string) string { return env[m[2:len(m)-1]] })
	var out []string
	for _, w := range strings.Fields(cmd) {
		if strings.HasPrefix(w, "$") {
			out = append(out, strings.Fields(env[w[1:]])...)
			continue
		}
		out = append(out, w)
	}
	return out
}

// checkConfig runs the real server with args and --check-config.
func checkConfig(t *testing.T, bin string, args []string) {
	t.Helper()
	out, err := exec.Command(filepath.Join(bin, "rendezvous"), append(args, "--check-config")...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration ok") {
		t.Fatalf("rendezvous %q: %v\n%s", args, err, out)
	}
}

func TestSystemdUnit(t *testing.T) {
	unit := unitFile(t, "machsend-rendezvous.service")
	env := envFile(t, "machsend-rendezvous.env")
	state := t.TempDir() // the StateDirectory, where the TLS key is made
	exe := expand(strings.ReplaceAll(unit["ExecStart"][0], "/var/lib/machsend-rendezvous", state), env)
	if exe[0] != "/usr/local/bin/rendezvous" {
		t.Fatalf("ExecStart runs %s", exe[0])
	}
	checkConfig(t, buildtest.Commands(t, "rendezvous"), exe[1:])
	if _, err := os.Stat(filepath.Join(state, "tls.pem")); err != nil {
		t.Fatalf("the TLS key was not made in the state directory: %v", err)
	}
	if got := unit["StateDirectory"]; len(got) != 1 || got[0] != "machsend-rendezvous" {
		t.Errorf("StateDirectory=%q", got)
	}
	for k, want := range map[string]string{
		"DynamicUser": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
		"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
		"RestrictNamespaces": "yes", "MemoryDenyWriteExecute": "yes", "SystemCallErrorNumber": "EPERM",
		"Restart": "on-failure",
	} {
		if got := unit[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s=%q, want %q", k, got, want)
		}
	}
	if _, ok := unit["User"]; ok {
		t.Error("the unit names a user; it should run as a DynamicUser")
	}
}

// TestSystemdAcceptsTheUnit: systemd-analyze verify finds nothing wrong
// (with ExecStart pointed at a built binary, which it requires to exist).
func TestSystemdAcceptsTheUnit(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no systemd-analyze under CI=true (make deps installs systemd): %v", err)
		}
		t.Skipf("no systemd-analyze here (make deps installs systemd): %v", err)
	}
	bin := buildtest.Commands(t, "rendezvous")
	b, err := os.ReadFile("machsend-rendezvous.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unit := filepath.Join(dir, "machsend-rendezvous.service")
	text := strings.ReplaceAll(string(b), "/usr/local/bin/rendezvous", filepath.Join(bin, "rendezvous"))
	text = strings.ReplaceAll(text, "EnvironmentFile=/etc/default/machsend-rendezvous", "EnvironmentFile="+filepath.Join(dir, "env"))
	text = strings.ReplaceAll(text, "/var/lib/machsend-rendezvous", dir)
	if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}

func TestContainerfile(t *testing.T) {
	b, err := os.ReadFile("Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	var entry, cmd []string
	var user string
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "ENTRYPOINT "):
			json.Unmarshal([]byte(strings.TrimPrefix(line, "ENTRYPOINT ")), &entry)
		case strings.HasPrefix(line, "CMD "):
			json.Unmarshal([]byte(strings.TrimPrefix(line, "CMD ")), &cmd)
		case strings.HasPrefix(line, "USER "):
			user = strings.TrimPrefix(line, "USER ")
		}
	}
	if len(entry) != 1 || entry[0] != "/rendezvous" || len(cmd) == 0 {
		t.Fatalf("ENTRYPOINT %q CMD %q", entry, cmd)
	}
	if user == "" || strings.HasPrefix(user, "0") || strings.HasPrefix(user, "root") {
		t.Fatalf("the container runs as %q, not an unprivileged user", user)
	}
	checkConfig(t, buildtest.Commands(t, "rendezvous"), cmd)
}
