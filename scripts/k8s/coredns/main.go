// A CoreDNS with only the plugins the cluster tier's Corefile uses (kubernetes, errors, health, ready, cache, bind).
//
// The stock CoreDNS main imports core/plugin, which links every plugin and makes the build fetch ~1.7 GB of
// modules. Plugins register themselves from their package init, so importing just these six is enough; the
// directive order stays the stock one (core/dnsserver's Directives). No `forward`: names outside the cluster are
// refused and nothing leaves the machine.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
