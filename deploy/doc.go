// Package deploy holds what an operator deploys the rendezvous server
// with: a hardened systemd unit with its environment file, and a container
// file (docs/deploy.md walks through both). Its tests check that the
// unit's and the container's command lines are accepted by the real
// server binary, that the hardening is in place, and that systemd accepts
// the unit.
package deploy
