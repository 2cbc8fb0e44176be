package transfer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Limits on a manifest from the wire.
const (
	MaxFiles     = 1_000_000
	MaxFileSize  = int64(1) << 46 // 64 TiB
	MaxPathLen   = 4096
	MaxNameLen   = 255
	DefaultChunk = 1 << 20
	MinChunk     = 64 << 10
	MaxChunk     = 16 << 20
)

// ErrManifest is wrapped by every manifest validation error.
var ErrManifest = errors.New("invalid manifest")

// Entry is one file or directory being shared.
type Entry struct {
	// Path is slash-separated and relative: "photos/2009/a.jpg".
	Path string `json:"path"`
	Size int64  `json:"size"`
	Mode uint32 `json:"mode"`
	Dir  bool   `json:"dir,omitempty"`
	// MTime is the file's modification time (Unix nanoseconds): with Size,
	// the version of the file a resumed part or an existing copy must
	// match. The file's SHA-256 is not in the manifest: the sender computes
	// it while it sends, and it follows the file's data (see Send).
	MTime int64 `json:"mtime_ns,omitempty"`
}

// Version is the transfer protocol's version. Version 2 dropped the
// per-chunk hash and moved each file's SHA-256 from the manifest to the
// end of its data, so a share's link appears before any file is read.
// Version 3 added the lead (Manifest.Lead): the first bytes of the first
// file follow the manifest without waiting for the receiver's request.
const Version = 3

// Manifest lists what a sender shares.
type Manifest struct {
	Version   int     `json:"version"`
	ChunkSize int     `json:"chunk_size"`
	Files     []Entry `json:"files"`
	// Lead, when set, is the chunk the sender sends right behind the
	// manifest, before the receiver's request: the first Lead.Size bytes of
	// entry Lead.Index, so that a receiver fetching that file from its
	// start writes its first bytes one round trip sooner. A receiver that
	// asks for anything else first reads the chunk and drops it.
	Lead *Lead `json:"lead,omitempty"`
	// Skipped lists what BuildManifest left out (symlinks, devices,
	// sockets), for the sender to show; it is not sent.
	Skipped []string `json:"-"`
}

// Lead is the chunk that follows a manifest unasked (Manifest.Lead).
type Lead struct {
	Index int `json:"index"`
	Size  int `json:"size"`
}

// MaxLead bounds a lead chunk: it is sent before the receiver has said it
// wants it, so it stays within a new connection's first flight.
const MaxLead = 8 << 10

// Total is the number of file bytes in the manifest.
func (m *Manifest) Total() int64 {
	var t int64
	for _, e := range m.Files {
		t += e.Size
	}
	return t
}

// CleanPath validates a path from the wire and returns it in canonical form:
// relative, slash-separated, no "." or ".." elements, no empty elements, no
// control characters or backslashes, valid UTF-8, bounded lengths.
func CleanPath(p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("empty path")
	case len(p) > MaxPathLen:
		return "", fmt.Errorf("path longer than %d bytes", MaxPathLen)
	case !utf8.ValidString(p):
		return "", errors.New("path is not valid UTF-8")
	case strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("absolute path %q", p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' || (r >= 0x80 && r < 0xa0) {
			return "", fmt.Errorf("path %q has a control character or backslash", p)
		}
	}
	for _, el := range strings.Split(p, "/") {
		switch {
		case el == "" || el == "." || el == "..":
			return "", fmt.Errorf("path %q has an empty, '.' or '..' element", p)
		case len(el) > MaxNameLen:
			return "", fmt.Errorf("path element longer than %d bytes", MaxNameLen)
		case len(el) >= 2 && el[1] == ':':
			return "", fmt.Errorf("path %q looks like a drive letter", p)
		}
	}
	if first, _, _ := strings.Cut(p, "/"); strings.EqualFold(first, StateDir) {
		return "", fmt.Errorf("path %q is inside %s, which receivers keep for themselves", p, StateDir)
	}
	return p, nil
}

// Validate checks a manifest from the wire: every rule a hostile sender
// could break (paths, sizes, counts, duplicates, a file where a directory is
// needed).
func (m *Manifest) Validate() error {
	if m.Version != Version {
		return fmt.Errorf("%w: protocol version %d, this machsend speaks %d: both sides need the same release of machsend", ErrManifest, m.Version, Version)
	}
	if m.ChunkSize < MinChunk || m.ChunkSize > MaxChunk {
		return fmt.Errorf("%w: chunk size %d", ErrManifest, m.ChunkSize)
	}
	if len(m.Files) > MaxFiles {
		return fmt.Errorf("%w: %d entries (at most %d)", ErrManifest, len(m.Files), MaxFiles)
	}
	kinds := map[string]bool{} // path -> is dir
	for i, e := range m.Files {
		p, err := CleanPath(e.Path)
		if err != nil {
			return fmt.Errorf("%w: entry %d: %v", ErrManifest, i, err)
		}
		if _, dup := kinds[p]; dup {
			return fmt.Errorf("%w: %q listed twice", ErrManifest, p)
		}
		if e.Size < 0 || e.Size > MaxFileSize || (e.Dir && e.Size != 0) {
			return fmt.Errorf("%w: %q: size %d", ErrManifest, p, e.Size)
		}
		kinds[p] = e.Dir
	}
	if l := m.Lead; l != nil && (l.Index < 0 || l.Index >= len(m.Files) || l.Size <= 0 || l.Size > MaxLead || int64(l.Size) > m.Files[l.Index].Size) {
		return fmt.Errorf("%w: lead of %d bytes of entry %d", ErrManifest, l.Size, l.Index)
	}
	// No entry may sit under a file.
	for p := range kinds {
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if isDir, ok := kinds[dir]; ok && !isDir {
				return fmt.Errorf("%w: %q is inside file %q", ErrManifest, p, dir)
			}
		}
	}
	return nil
}

// ParseManifest decodes and validates a manifest.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrManifest, err)
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return &m, nil
}

// Source is a local file or directory behind a manifest entry.
type Source struct {
	Entry
	Local string // path on disk
}

// BuildManifest walks the given paths (files and folders; a folder is shared
// with its own name as the top level). It reads no file: the cost is one
// stat per entry, whatever the sizes, so a link can be shown at once.
func BuildManifest(paths []string) (*Manifest, []Source, error) {
	var srcs []Source
	var skipped []string
	seen := map[string]bool{}
	for _, root := range paths {
		root = filepath.Clean(root)
		if _, err := os.Stat(root); err != nil {
			return nil, nil, err
		}
		base := filepath.Dir(root)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(base, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if seen[rel] {
				return fmt.Errorf("%s is shared twice (two arguments with the same name?)", rel)
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
				srcs = append(srcs, Source{Entry{Path: rel, Mode: uint32(info.Mode().Perm()), Dir: true}, p})
			case info.Mode().IsRegular():
				srcs = append(srcs, Source{Entry{Path: rel, Size: info.Size(), Mode: uint32(info.Mode().Perm()), MTime: info.ModTime().UnixNano()}, p})
			default:
				skipped = append(skipped, rel) // symlinks, devices, sockets: not shared, but listed
				return nil
			}
			seen[rel] = true
			return nil
		})
		if err != nil {
			return nil, nil, err
		}
	}
	m := &Manifest{Version: Version, ChunkSize: DefaultChunk, Skipped: skipped}
	for _, s := range srcs {
		m.Files = append(m.Files, s.Entry)
	}
	if err := m.Validate(); err != nil {
		return nil, nil, err
	}
	return m, srcs, nil
}

// MatchAny selects the entries that match one of the patterns: a
// path.Match pattern, the entry's path, a folder above it, or (so that a
// selected entry's folders are created) a folder the pattern lies in.
func MatchAny(patterns []string) func(Entry) bool {
	return func(e Entry) bool {
		for _, pat := range patterns {
			if ok, _ := path.Match(pat, e.Path); ok || e.Path == pat ||
				strings.HasPrefix(e.Path, strings.TrimSuffix(pat, "/")+"/") ||
				strings.HasPrefix(pat, e.Path+"/") {
				return true
			}
		}
		return false
	}
}
