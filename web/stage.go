package web

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/machsend/machsend/transfer"
)

// maxStaged bounds the entries a page may add to one share.
const maxStaged = 100_000

// errFrozen: the staged files are being shared; the manifest the
// recipients saw must not change under them.
var errFrozen = errors.New("these files are being shared: stop sharing before adding or removing files")

// stage is the helper's private folder of what the page dropped or
// picked: the only files the helper ever shares. Everything is created
// through an os.Root, so no name, however crafted, reaches outside it.
type stage struct {
	dir  string
	root *os.Root

	// mu is held for reading while a file arrives and for writing to
	// freeze the stage (a share starts) or clear it, so a share never
	// includes a half-written file.
	mu     sync.RWMutex
	frozen bool

	emu      sync.Mutex       // guards entries, version and listed, between files arriving at once
	entries  map[string]Entry // by staged path (relative, slash-separated)
	version  int              // counts changes to entries
	listed   []Entry          // entries sorted, as of listedAt
	listedAt int
}

func newStage(parent string) (*stage, error) {
	dir, err := os.MkdirTemp(parent, "machsend-web-")
	if err != nil {
		return nil, fmt.Errorf("cannot make the folder for dropped files: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("cannot open the folder for dropped files: %w", err)
	}
	return &stage{dir: dir, root: root, entries: map[string]Entry{}}, nil
}

// put adds a folder, or a file with body as its contents and mtime (zero:
// now) as its modification time. rel is the path the page gives: a
// dropped item's name, or a path inside a dropped folder.
func (s *stage) put(rel string, folder bool, mtime time.Time, body io.Reader) error {
	clean, err := transfer.CleanPath(rel)
	if err != nil {
		return fmt.Errorf("not a name a file can have here: %w", err)
	}
	name := filepath.FromSlash(clean)
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.admit(clean); err != nil {
		return err
	}
	if folder {
		if err := s.root.MkdirAll(name, 0o755); err != nil {
			return fmt.Errorf("cannot add folder %s: %w", clean, err)
		}
		return s.record(Entry{Path: clean, Dir: true})
	}
	if dir := filepath.Dir(name); dir != "." {
		if err := s.root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("cannot add %s: %w", clean, err)
		}
	}
	f, err := s.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("cannot add %s: %w", clean, err)
	}
	n, err := io.Copy(f, body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.root.Remove(name)
		return fmt.Errorf("%s did not arrive whole (add it again): %w", clean, err)
	}
	if !mtime.IsZero() {
		_ = s.root.Chtimes(name, mtime, mtime)
	}
	return s.record(Entry{Path: clean, Size: n})
}

// admit refuses changes to a frozen stage and more than maxStaged entries;
// s.mu is held for reading.
func (s *stage) admit(clean string) error {
	if s.frozen {
		return errFrozen
	}
	s.emu.Lock()
	defer s.emu.Unlock()
	if _, ok := s.entries[clean]; !ok && len(s.entries) >= maxStaged {
		return fmt.Errorf("at most %d files and folders in one share", maxStaged)
	}
	return nil
}

func (s *stage) record(e Entry) error {
	s.emu.Lock()
	defer s.emu.Unlock()
	s.entries[e.Path] = e
	s.version++
	return nil
}

// freeze stops changes and returns the top-level entries to share (full
// paths), or nil if nothing is staged.
func (s *stage) freeze() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.emu.Lock()
	defer s.emu.Unlock()
	tops := map[string]bool{}
	for p := range s.entries {
		top, _, _ := strings.Cut(p, "/")
		tops[top] = true
	}
	if len(tops) == 0 {
		return nil
	}
	s.frozen = true
	var out []string
	for t := range tops {
		out = append(out, filepath.Join(s.dir, t))
	}
	slices.Sort(out)
	return out
}

// thaw allows changes again (the share stopped).
func (s *stage) thaw() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = false
}

// clear removes everything staged.
func (s *stage) clear() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.frozen {
		return errFrozen
	}
	s.emu.Lock()
	defer s.emu.Unlock()
	for p := range s.entries {
		top, _, _ := strings.Cut(p, "/")
		if err := s.root.RemoveAll(filepath.FromSlash(top)); err != nil {
			return fmt.Errorf("cannot remove %s: %w", top, err)
		}
	}
	s.entries = map[string]Entry{}
	s.version++
	return nil
}

// close removes the stage (the files in it are copies of what the page
// dropped).
func (s *stage) close() error {
	s.root.Close()
	return os.RemoveAll(s.dir)
}

// list is what is staged, in path order, with sizes, and the version of
// it; the sorted list is made again only after a change.
func (s *stage) list() ([]Entry, int) {
	s.emu.Lock()
	defer s.emu.Unlock()
	if s.listed == nil || s.listedAt != s.version {
		s.listed = make([]Entry, 0, len(s.entries))
		for _, e := range s.entries {
			s.listed = append(s.listed, e)
		}
		slices.SortFunc(s.listed, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
		s.listedAt = s.version
	}
	return s.listed, s.version
}
