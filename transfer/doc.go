// Package transfer is machsend's file transfer: the link, the secure
// channel, the manifest and the protocol that moves files between a sender
// and a receiver over the connection traversal established.
//
// A Link (http://SERVER/s/SESSION#SECRET, or machsend://SERVER/SESSION#SECRET) names the rendezvous server and
// session; its secret, after '#', never reaches the server. Secure runs a
// Noise NNpsk0 handshake keyed by the secret (mutual authentication, forward
// secrecy) and then carries AES-256-GCM records; a peer that cannot prove the
// secret is refused, and any byte changed in transit fails a record's
// authentication (ErrTampered).
//
// The sender sends a Manifest (paths, sizes, modes, modification times; it
// reads no file, so a share of any size gets its link at once), the
// receiver answers with what it still needs (resuming a part from an
// earlier run, with the SHA-256 of the part's bytes, which the sender
// checks against its file), and the sender streams those files one after
// another in chunks. The secure channel authenticates every byte; with
// ReceiveOptions.Checksum both sides also hash every file and the receiver
// compares the sender's SHA-256 with its own before the rename. The
// receiver writes into a part in StateDir, records the synced length in
// the part's state, and renames the file into place when it is complete.
// Names from the wire are validated (CleanPath, Manifest.Validate) and every
// write goes through an os.Root that refuses symlinks, so a hostile manifest
// cannot touch anything outside the destination.
package transfer
