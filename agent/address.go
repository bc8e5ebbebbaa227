package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/hashicorp/go-sockaddr"
	sockaddrtemplate "github.com/hashicorp/go-sockaddr/template"
)

// DefaultAddressTemplate is the go-sockaddr template used when no address is
// configured: the first private address, preferring the interface of the
// default route.
const DefaultAddressTemplate = "{{ GetPrivateIP }}"

// ErrAddress reports an address or address template that does not yield
// exactly one usable IP address.
var ErrAddress = errors.New("address")

// ResolveAddress turns a literal IP address or a go-sockaddr template into
// exactly one IP address, evaluated against the host's interfaces.
func ResolveAddress(spec string) (netip.Addr, error) {
	if addr, ok := literalAddr(spec); ok {
		return addr, nil
	}
	ifAddrs, err := sockaddr.GetAllInterfaces()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: read the host's interfaces: %v", ErrAddress, err)
	}
	return ResolveAddressFrom(spec, ifAddrs)
}

// ResolveAddressFrom is ResolveAddress against a given set of interface
// addresses, so the choice can be tested without touching the host.
func ResolveAddressFrom(spec string, ifAddrs sockaddr.IfAddrs) (netip.Addr, error) {
	if addr, ok := literalAddr(spec); ok {
		return addr, nil
	}
	if !strings.Contains(spec, "{{") {
		return netip.Addr{}, fmt.Errorf("%w: %q is neither an IP address nor a go-sockaddr template such as %q", ErrAddress, spec, DefaultAddressTemplate)
	}
	out, err := sockaddrtemplate.ParseIfAddrs(spec, ifAddrs)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: template %q: %v", ErrAddress, spec, err)
	}
	fields := strings.Fields(out)
	switch len(fields) {
	case 0:
		return netip.Addr{}, fmt.Errorf("%w: template %q found no address on this host; name one with a literal IP or a narrower template", ErrAddress, spec)
	case 1:
	default:
		return netip.Addr{}, fmt.Errorf("%w: template %q found %d addresses (%s); pick one with a literal IP or a narrower template", ErrAddress, spec, len(fields), strings.Join(fields, ", "))
	}
	addr, ok := literalAddr(fields[0])
	if !ok {
		return netip.Addr{}, fmt.Errorf("%w: template %q yielded %q, which is not an IP address", ErrAddress, spec, fields[0])
	}
	return addr, nil
}

// literalAddr parses an IP literal, with or without IPv6 brackets. Zoned
// (link-local) addresses are refused: etcd cannot put them in URLs.
func literalAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	addr, err := netip.ParseAddr(s)
	if err != nil || addr.Zone() != "" {
		return netip.Addr{}, false
	}
	return addr.Unmap(), true
}

// addresses resolves the advertise and listen addresses: the advertise
// address must be a unicast address a peer can reach; the listen address
// may also be the unspecified address (every interface).
func (c *Config) addresses() (advertise, listen netip.Addr, err error) {
	advertise, err = ResolveAddress(c.AdvertiseAddress)
	if err != nil {
		return advertise, listen, fmt.Errorf("%w: %w", ErrConfig, &FieldError{Field: "AdvertiseAddress", Err: err})
	}
	if why := notReachable(advertise); why != "" {
		return advertise, listen, fmt.Errorf("%w: %w", ErrConfig, fieldErr("AdvertiseAddress", "%s is %s, which peers cannot reach; give the host's own unicast address", advertise, why))
	}
	listen = advertise
	if c.ListenAddress != "" {
		if listen, err = ResolveAddress(c.ListenAddress); err != nil {
			return advertise, listen, fmt.Errorf("%w: %w", ErrConfig, &FieldError{Field: "ListenAddress", Err: err})
		}
		if why := notReachable(listen); why != "" && !listen.IsUnspecified() {
			return advertise, listen, fmt.Errorf("%w: %w", ErrConfig, fieldErr("ListenAddress", "%s is %s; etcd can listen only on a unicast address of this host, or on %s for all of them", listen, why, unspecified(listen)))
		}
	}
	return advertise, listen, nil
}

// notReachable says why peers cannot reach addr, or "" if they can.
func notReachable(addr netip.Addr) string {
	switch {
	case !addr.IsValid():
		return "no address"
	case addr.IsUnspecified():
		return "the unspecified address"
	case addr.IsMulticast():
		return "a multicast address"
	case addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	}
	return ""
}

func unspecified(addr netip.Addr) string {
	if addr.Is6() {
		return "::"
	}
	return "0.0.0.0"
}
