//go:build conformance

// Package conformance runs the upstream Gateway API conformance suite in mesh mode against a cluster where Meshwork
// is installed (the suite reads the kubeconfig like kubectl: KUBECONFIG or ~/.kube/config).
//
// Everything the suite needs besides the cluster is given as its own flags by `make conformance`
// (mk/conformance.mk): --conformance-profiles=MESH-HTTP,MESH-GRPC, --mesh-name (the XMesh whose status lists
// Meshwork's supported features), --namespace-labels=meshwork.io/inject=enabled (sidecar injection for the suite's
// namespaces), --report-output and the implementation details (--organization, --project, --url, --version,
// --contact). Defaults below only fill what was not given.
package conformance

import (
	"testing"

	"sigs.k8s.io/gateway-api/conformance"
	"sigs.k8s.io/gateway-api/conformance/utils/suite"
)

func TestMeshConformance(t *testing.T) {
	opts := conformance.DefaultOptions(t)
	if len(opts.ConformanceProfiles) == 0 {
		opts.ConformanceProfiles = []suite.ConformanceProfileName{
			suite.MeshHTTPConformanceProfileName,
			suite.MeshGRPCConformanceProfileName,
		}
	}
	if len(opts.NamespaceLabels) == 0 {
		opts.NamespaceLabels = map[string]string{"meshwork.io/inject": "enabled"}
	}
	if opts.Implementation.Organization == "" {
		opts.Implementation.Organization = "meshwork"
		opts.Implementation.Project = "meshwork"
		opts.Implementation.URL = "https://meshwork.io"
		opts.Implementation.Contact = []string{"@meshwork/maintainers"}
	}
	conformance.RunConformanceWithOptions(t, opts)
}
