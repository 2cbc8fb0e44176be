package k8s

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// job is the part of a batch/v1 Job the experiment depends on.
type job struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Spec       struct {
		CompletionMode string `yaml:"completionMode"`
		Completions    int    `yaml:"completions"`
		Parallelism    int    `yaml:"parallelism"`
		Template       struct {
			Spec struct {
				RestartPolicy string `yaml:"restartPolicy"`
				Containers    []struct {
					Image   string   `yaml:"image"`
					Command []string `yaml:"command"`
					Args    []string `yaml:"args"`
					Env     []struct {
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
					SecurityContext struct {
						Privileged bool `yaml:"privileged"`
					} `yaml:"securityContext"`
					VolumeMounts []struct {
						Name      string `yaml:"name"`
						MountPath string `yaml:"mountPath"`
					} `yaml:"volumeMounts"`
				} `yaml:"containers"`
				Volumes []struct {
					Name string `yaml:"name"`
					PVC  *struct {
						ClaimName string `yaml:"claimName"`
					} `yaml:"persistentVolumeClaim"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

func load(t *testing.T, path string) job {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var j job
	if err := yaml.Unmarshal(b, &j); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if j.APIVersion != "batch/v1" || j.Kind != "Job" || len(j.Spec.Template.Spec.Containers) != 1 || j.Spec.Template.Spec.RestartPolicy != "Never" {
		t.Fatalf("%s: not a one-container batch/v1 Job that never restarts: %+v", path, j)
	}
	return j
}

// The shard Job: indexed, one shard per completion index with N equal to
// its completions, a privileged container (the lab's namespaces, mounts
// and raw sockets), each shard into its own directory of a shared volume
// that the merge Job reads.
func TestShardsManifest(t *testing.T) {
	j := load(t, "shards.yaml")
	c := j.Spec.Template.Spec.Containers[0]
	if j.Spec.CompletionMode != "Indexed" || j.Spec.Completions < 1 || j.Spec.Parallelism < 1 {
		t.Errorf("completion mode %q, completions %d, parallelism %d: want an Indexed Job", j.Spec.CompletionMode, j.Spec.Completions, j.Spec.Parallelism)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if n, err := strconv.Atoi(env["SHARDS"]); err != nil || n != j.Spec.Completions {
		t.Errorf("SHARDS=%q but completions %d: every index must be a shard of that many", env["SHARDS"], j.Spec.Completions)
	}
	cmd := strings.Join(append(c.Command, c.Args...), " ")
	for _, want := range []string{`--shard "$JOB_COMPLETION_INDEX/$SHARDS"`, `--out "/results/shard-$JOB_COMPLETION_INDEX"`, "experiment run"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("the shard command %q lacks %q", cmd, want)
		}
	}
	if !c.SecurityContext.Privileged {
		t.Error("the lab needs a privileged container (namespaces, mounts, nftables, raw sockets)")
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	if mounts["/results"] == "" || mounts["/run/netns"] == "" {
		t.Errorf("mounts %v: want the results volume and a /run/netns of the pod's own", mounts)
	}
	merge := load(t, "merge.yaml")
	mc := merge.Spec.Template.Spec.Containers[0]
	if mcmd := strings.Join(append(mc.Command, mc.Args...), " "); !strings.Contains(mcmd, "experiment merge /results/merged /results/shard-*") || !strings.Contains(mcmd, "experiment report --out /results/merged") {
		t.Errorf("the merge command %q does not merge the shards' directories and report", mcmd)
	}
	claim := func(j job) string {
		for _, v := range j.Spec.Template.Spec.Volumes {
			if v.Name == "results" && v.PVC != nil {
				return v.PVC.ClaimName
			}
		}
		return ""
	}
	if claim(j) == "" || claim(j) != claim(merge) || c.Image != mc.Image {
		t.Errorf("the shards write claim %q with image %q, the merge reads %q with %q: want one volume and one image", claim(j), c.Image, claim(merge), mc.Image)
	}
}

// The image installs every Debian package the lab needs (the Makefile's
// DEBS, the one list of them).
func TestDockerfileHasTheLabsPackages(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^DEBS\s*:=\s*(.+)$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no DEBS line in the Makefile")
	}
	df, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range strings.Fields(string(m[1])) {
		if !regexp.MustCompile(`\s` + regexp.QuoteMeta(p) + `(\s|$)`).Match(df) {
			t.Errorf("the Dockerfile does not install %s", p)
		}
	}
}
