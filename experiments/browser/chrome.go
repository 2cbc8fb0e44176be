package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser is a headless Chromium running in one lab host's network
// namespace, with one tab.
type Browser struct {
	Tab context.Context // run chromedp actions in it

	cancelTab, cancelAlloc context.CancelFunc
	cmd                    *exec.Cmd // ip netns exec, which becomes chromium
	dir                    string    // its profile, removed on Close
}

// Launch starts Chromium in the named namespace with a window of w×h CSS
// pixels. It fails if the chromium program is missing (make deps installs
// it).
func Launch(ctx context.Context, netns string, w, h int) (*Browser, error) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		return nil, fmt.Errorf("no chromium here (make deps installs Debian's): %w", err)
	}
	ip, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("no ip command (iproute2): %w", err)
	}
	dir, err := os.MkdirTemp("", "machsend-chromium-")
	if err != nil {
		return nil, err
	}
	b := &Browser{dir: dir}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.UserDataDir(dir), chromedp.WindowSize(w, h),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// ip netns exec NS chromium ARGS...: ip joins the namespace
			// and execs chromium in its place (same process, same pipe
			// descriptors), in a process group of its own.
			cmd.Args = append([]string{"ip", "netns", "exec", netns, chromium}, cmd.Args[1:]...)
			cmd.Path = ip
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
			b.cmd = cmd
		}))
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	tab, cancelTab := chromedp.NewContext(actx)
	b.Tab, b.cancelTab, b.cancelAlloc = tab, cancelTab, cancelAlloc
	// The first action starts the browser, which lives as long as the
	// context of that call: no timeout on it.
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		b.Close()
		return nil, fmt.Errorf("start chromium in %s: %w", netns, err)
	}
	return b, nil
}

// Close ends the browser: chromedp stops the process it started, then
// anything left in its process group (renderers, the zygote) is killed by
// the group's id, and its profile is removed.
func (b *Browser) Close() error {
	b.cancelTab()
	b.cancelAlloc()
	if b.cmd != nil && b.cmd.Process != nil {
		if err := syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stop chromium's process group: %w", err)
		}
	}
	var err error
	for range 50 { // a dying renderer may still write into the profile
		if err = os.RemoveAll(b.dir); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}
