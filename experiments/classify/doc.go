// Package classify names what happened in a trial from its evidence: the
// packets captured on both sides of every NAT (pcap) and the NATs'
// conntrack tables, in the vocabulary of the NAT model ("peer's SYN dropped
// at nat-b", "nat-a answered the SYN with RST", "SYN-ACK invalid at nat-a:
// new ISN", "predicted port 20001, actual 20002"). It also draws ladder
// diagrams of handshakes, one per failure class and per method's success,
// and indexes them (ladders/index.json) for the report.
package classify
