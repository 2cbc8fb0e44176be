package natlab

import "fmt"

// Roles experiments find nodes by (NodeSpec.Role), so that code never
// names a topology's nodes.
const (
	RolePeerA      = "peer-a"     // the side that creates the session
	RolePeerB      = "peer-b"     // the side that joins it
	RoleRendezvous = "rendezvous" // the rendezvous server's host
	RoleCross      = "cross"      // a host beside peer A making cross traffic
)

// WithRole returns the name of the node with role ("" if none has it).
func (t *Topology) WithRole(role string) string {
	for _, n := range t.Nodes {
		if n.Role == role {
			return n.Name
		}
	}
	return ""
}

// MustRole is WithRole for roles a caller cannot do without: an error
// names the topology and the role.
func (t *Topology) MustRole(role string) (string, error) {
	if n := t.WithRole(role); n != "" {
		return n, nil
	}
	return "", fmt.Errorf("%w: topology %s has no node with role %q", ErrTopology, t.Name, role)
}

// NATsOf lists the NAT nodes on a node's way out, following default
// gateways, nearest first (none for a host on the core).
func (t *Topology) NATsOf(node string) []string {
	var out []string
	seen := map[string]bool{}
	for n := t.node(node); n != nil && n.Gateway != "" && !seen[n.Name]; n = t.node(n.Gateway) {
		seen[n.Name] = true
		if g := t.node(n.Gateway); g != nil && g.Kind == KindNAT {
			out = append(out, g.Name)
		}
	}
	return out
}

// SideNATs are the NATs on peer A's and peer B's way out, nearest first;
// NATs both peers sit behind (one NAT for a LAN) appear on both sides.
func (t *Topology) SideNATs() (a, b []string) {
	return t.NATsOf(t.WithRole(RolePeerA)), t.NATsOf(t.WithRole(RolePeerB))
}

// Roles returns the role of every node that has one.
func (t *Topology) Roles() map[string]string {
	out := map[string]string{}
	for _, n := range t.Nodes {
		if n.Role != "" {
			out[n.Name] = n.Role
		}
	}
	return out
}

// NodeWithRole is the lab's node with role.
func (l *Lab) NodeWithRole(role string) (*Node, error) {
	name, err := l.Topology.MustRole(role)
	if err != nil {
		return nil, err
	}
	return l.Node(name)
}
