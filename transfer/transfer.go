package transfer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/machsend/machsend/internal/sockopt"
)

// Errors callers test for.
var (
	ErrExists   = errors.New("destination exists")
	ErrPeerGone = errors.New("the peer went away")
	ErrDiskFull = errors.New("disk full")
	ErrRemote   = errors.New("the peer reported an error")
	// ErrListedOnly is what Send returns when the receiver only looked at
	// the manifest (ReceiveOptions.ListOnly) and asked for nothing.
	ErrListedOnly = errors.New("the receiver only listed the files")
	// ErrResumeDamaged: a part kept from an earlier run did not match; it
	// was discarded, and running again fetches the file whole.
	ErrResumeDamaged = errors.New("resumed data was damaged")
	// ErrNothingSelected: the selection matched no entry of the share.
	ErrNothingSelected = errors.New("nothing in this share matches the selection")
	// ErrChanged: a shared file changed after it was shared.
	ErrChanged = errors.New("a shared file changed since it was shared")
	// ErrNoSpace: the destination lacks room for what was requested.
	ErrNoSpace = errors.New("not enough free space at the destination")
)

// umask is this process's file-creation mask (from /proc/self/status;
// 022 when it cannot be read): received files get the sender's mode
// without the bits the user's umask withholds.
var umask = sync.OnceValue(readUmask) // read once, not per received file

func readUmask() fs.FileMode {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0o022
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return fs.FileMode(m) & 0o777
			}
		}
	}
	return 0o022
}

// Printable is text a peer sent, made safe for a terminal: control
// characters (escape sequences among them) and invalid UTF-8 become '?',
// and it is cut to max bytes.
func Printable(s string, max int) string {
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

// Progress is one progress event, for the terminal display and --json.
type Progress struct {
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"` // manifest, file-start, chunk, file-done, skip, done
	File      string    `json:"file,omitempty"`
	FileBytes int64     `json:"file_bytes"`
	FileSize  int64     `json:"file_size"`
	// Sent is what crossed the network in this session; Resumed was already
	// verified before it started (not re-sent, not counted in speed).
	Sent    int64 `json:"sent"`
	Resumed int64 `json:"resumed"`
	Total   int64 `json:"total"`
	// SHA256 is a finished file's digest (file-done), as both sides
	// computed it: what sha256sum prints for the file on either side.
	SHA256 string `json:"sha256,omitempty"`
}

// request is what the receiver asks for. With Checksum, the sender sends
// each file's SHA-256 after its data and the receiver checks its copy
// against it (one hash pass over each byte on each side).
type request struct {
	Files    []fileRequest `json:"files"`
	Checksum bool          `json:"checksum,omitempty"`
}

// fileRequest asks for one entry from Offset; a receiver resuming a part
// sends its part's SHA-256 (Prefix, hex), and a sender whose file does
// not start with those bytes sends the file from offset 0 instead.
type fileRequest struct {
	Index  int    `json:"index"`
	Offset int64  `json:"offset"`
	Prefix string `json:"prefix_sha256,omitempty"`
	// lead: the sender sent the first Offset bytes as the manifest's
	// lead (the sender's own note, never on the wire).
	lead bool
}

func sendError(w io.Writer, err error) {
	_ = writeFrame(w, frameError, []byte(err.Error()))
}

func mapIOErr(err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("%w: %v", ErrDiskFull, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), sockopt.Reset.Is(err), errors.Is(err, syscall.EPIPE):
		return fmt.Errorf("%w: %v", ErrPeerGone, err)
	}
	return err
}

// ReceiveOptions say where and what to receive.
type ReceiveOptions struct {
	Dir string
	// Select chooses entries (nil: all).
	Select func(Entry) bool
	// Overwrite replaces existing different files instead of failing.
	Overwrite bool
	// ListOnly returns the manifest without downloading.
	ListOnly bool
	// OnManifest, if set, sees the validated manifest before anything is
	// requested (to show the user what is shared).
	OnManifest func(*Manifest)
	// Checksum asks the sender for each file's SHA-256 and checks the
	// received file against it before renaming it into place (a hash pass
	// over every byte on each side; the secure channel already
	// authenticates every byte in transit).
	Checksum bool
}

// partState is what a .part's sidecar records: the version of the file
// it is a part of (size and modification time) and how much of it arrived
// through an authenticated channel and was synced to disk.
type partState struct {
	Size     int64 `json:"size"`
	MTime    int64 `json:"mtime_ns"`
	Chunk    int   `json:"chunk"`
	Verified int64 `json:"verified"`
}

// plan is one file to receive.
type plan struct {
	index  int
	entry  Entry
	offset int64
	part   *os.File
	hash   hash.Hash
	state  partState
	// resumed is the verified prefix found at the start; saved is the
	// offset the state last vouched for, and when.
	resumed   int64
	saved     int64
	savedTime time.Time
}

// Resume state is saved after at least stateEvery bytes or stateAge, with
// the data synced first: a state never vouches for bytes a power loss
// could take back, and syncing every chunk would cost the throughput.
const (
	stateEvery = 64 << 20
	stateAge   = 2 * time.Second
)

// checkpoint syncs p's part and saves its state when enough has arrived
// since the last time.
func checkpoint(root *os.Root, p *plan) error {
	if p.offset-p.saved < stateEvery && time.Since(p.savedTime) < stateAge {
		return nil
	}
	if err := p.part.Sync(); err != nil {
		return err
	}
	p.state.Verified = p.offset
	if err := saveState(root, p); err != nil {
		return err
	}
	p.saved, p.savedTime = p.offset, time.Now()
	return nil
}

// noSymlinks refuses a path if any existing element of it is a symlink, so a
// file planted in the destination cannot redirect a write.
func noSymlinks(root *os.Root, p string) error {
	parts := strings.Split(p, "/")
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		st, err := root.Lstat(sub)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symlink: refusing to write through it", sub)
		}
	}
	return nil
}

// StateDir is the folder, inside the destination, where a receiver keeps
// the files it is receiving (.part) and their resume state: names no
// manifest entry can take (CleanPath refuses the folder), so a sender can
// never make a receiver truncate, follow or replace a file of the user's
// by naming it "x.part". A part's name is a hash of its entry's path, so
// any entry name that fits the file system has a part that fits too.
const StateDir = ".machsend-partial"

// PartPath is where the part of entry lives while it is received.
func PartPath(entry string) string {
	sum := sha256.Sum256([]byte(entry))
	return StateDir + "/" + hex.EncodeToString(sum[:16]) + ".part"
}

// StatePath is the resume state of entry's part.
func StatePath(entry string) string { return PartPath(entry) + ".json" }

// openPart opens (or creates) entry's part in the state folder, which it
// creates private to the user; anything there that is not a regular file
// (a symlink planted to redirect the writes) is refused.
func openPart(root *os.Root, entry string) (*os.File, error) {
	if err := root.Mkdir(StateDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	if st, err := root.Lstat(StateDir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s is not a folder: refusing to keep parts there", StateDir)
	}
	p := PartPath(entry)
	if st, err := root.Lstat(p); err == nil && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: refusing to write through it", p)
	}
	return root.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
}

// preparePlan decides what to do with one entry: skip it (already here:
// a regular file of the same size and modification time, which is what a
// finished receive leaves, the quick check rsync makes too), resume its
// .part from the verified offset, or start afresh.
func preparePlan(root *os.Root, index int, e Entry, chunk int, overwrite bool) (*plan, bool, error) {
	if err := noSymlinks(root, e.Path); err != nil {
		return nil, false, err
	}
	if e.Dir {
		return nil, false, root.MkdirAll(e.Path, 0o755)
	}
	if dir := path.Dir(e.Path); dir != "." {
		if err := root.MkdirAll(dir, 0o755); err != nil {
			return nil, false, err
		}
		if err := noSymlinks(root, dir); err != nil {
			return nil, false, err
		}
	}
	if st, err := root.Lstat(e.Path); err == nil {
		if st.Mode().IsRegular() && st.Size() == e.Size && st.ModTime().UnixNano() == e.MTime {
			return nil, true, nil // already here
		}
		if !overwrite {
			return nil, false, fmt.Errorf("%w: %s (remove it, choose another -o, or pass --overwrite)", ErrExists, e.Path)
		}
	}
	p := &plan{index: index, entry: e, hash: sha256.New(), state: partState{Size: e.Size, MTime: e.MTime, Chunk: chunk}}
	p.offset = resumable(root, p)
	p.resumed, p.saved = p.offset, p.offset
	return p, false, nil
}

// resumable re-hashes the verified prefix of a part an earlier run left
// for the same file (local I/O only, nothing re-sent) and returns its
// length; 0 when there is none or it does not fit the state. The part is
// not kept open: a plan opens its part when its first byte arrives, so
// any number of entries can be received.
func resumable(root *os.Root, p *plan) int64 {
	var st partState
	b, err := root.ReadFile(StatePath(p.entry.Path))
	if err != nil || json.Unmarshal(b, &st) != nil || st.MTime != p.entry.MTime || st.Size != p.entry.Size ||
		st.Chunk != p.state.Chunk || st.Verified <= 0 || st.Verified > p.entry.Size {
		return 0
	}
	f, err := root.Open(PartPath(p.entry.Path))
	if err != nil {
		return 0
	}
	defer f.Close()
	if n, err := io.Copy(p.hash, io.NewSectionReader(f, 0, st.Verified)); err != nil || n != st.Verified {
		p.hash.Reset()
		return 0
	}
	return st.Verified
}

// openPlan opens p's part for writing from p.offset (cutting whatever an
// interrupted run wrote past its verified prefix) and records its state.
func openPlan(root *os.Root, p *plan) error {
	part, err := openPart(root, p.entry.Path)
	if err != nil {
		return err
	}
	if err := part.Truncate(p.offset); err != nil {
		part.Close()
		return err
	}
	p.part = part
	p.state.Verified = p.offset
	p.savedTime = time.Now()
	return saveState(root, p)
}

// saveState replaces the resume state atomically: written beside it, then
// renamed over it, so a receiver killed at any moment leaves either the old
// state or the new one, never a truncated file (which would lose the
// verified prefix and force the whole file to be sent again).
func saveState(root *os.Root, p *plan) error {
	b, _ := json.Marshal(p.state)
	final := StatePath(p.entry.Path)
	tmp := final + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(b)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = root.Remove(tmp)
		return werr
	}
	return root.Rename(tmp, final)
}

// finish verifies a completed .part against the SHA-256 the sender
// computed as it read the file (sum; nil when no checksum was asked for),
// gives it the sender's modification time and renames it into place.
func finish(root *os.Root, p *plan, sum []byte, overwrite bool) error {
	if p.part == nil { // an empty file, or one that was all resumed
		if err := openPlan(root, p); err != nil {
			return err
		}
	}
	if p.offset != p.entry.Size {
		return fmt.Errorf("%w: %s ended at %d of %d bytes", ErrFrame, p.entry.Path, p.offset, p.entry.Size)
	}
	if got := p.hash.Sum(nil); sum != nil && !bytes.Equal(got, sum) {
		if p.resumed > 0 {
			// Every chunk of this run was authenticated: the prefix kept
			// from an earlier run is what went bad (a crash, a disk). Drop
			// it, so the next run fetches the file whole.
			p.part.Close()
			p.part = nil
			_ = root.Remove(PartPath(p.entry.Path))
			_ = root.Remove(StatePath(p.entry.Path))
			return fmt.Errorf("%w: %s: the part kept from an earlier run was damaged and has been discarded; run the same command again to fetch the file whole", ErrResumeDamaged, p.entry.Path)
		}
		return fmt.Errorf("%w: %s: SHA-256 here %x, the sender's %x", ErrTampered, p.entry.Path, got, sum)
	}
	if err := p.part.Sync(); err != nil {
		return mapIOErr(err)
	}
	if err := p.part.Chmod(fs.FileMode(p.entry.Mode) & 0o777 &^ umask()); err != nil {
		return err
	}
	if err := p.part.Close(); err != nil {
		return err
	}
	p.part = nil
	if err := root.Chtimes(PartPath(p.entry.Path), time.Now(), time.Unix(0, p.entry.MTime)); err != nil {
		return err
	}
	if _, err := root.Lstat(p.entry.Path); err == nil && !overwrite {
		return fmt.Errorf("%w: %s appeared while receiving", ErrExists, p.entry.Path)
	}
	if err := noSymlinks(root, p.entry.Path); err != nil {
		return err
	}
	if err := root.Rename(PartPath(p.entry.Path), p.entry.Path); err != nil {
		return err
	}
	_ = root.Remove(StatePath(p.entry.Path))
	_ = root.Remove(StateDir) // only once empty: other parts may remain
	return nil
}
