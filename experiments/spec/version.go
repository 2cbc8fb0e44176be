package spec

import (
	"os/exec"
	"strings"
)

// CodeVersion names the commit the binaries come from, "-dirty" when code
// differs from it. results/ itself is left out of the comparison: a run
// rewrites it, and that must not make the next run's resume fail.
func CodeVersion() string {
	out, err := exec.Command("git", "rev-parse", "--short=8", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	v := strings.TrimSpace(string(out))
	st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results").Output()
	if err != nil || len(strings.TrimSpace(string(st))) > 0 {
		v += "-dirty"
	}
	return v
}
