// Command kstatus reads a Kubernetes List (JSON) on stdin and prints, for each item, its name and
// the status that sigs.k8s.io/cli-utils' kstatus computes: what Flux (wait: true), Argo CD and
// kubectl-based tooling conclude from credsync's conditions.
package main

import (
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading stdin:", err)
		os.Exit(2)
	}
	// UnstructuredList keeps integers as int64, as kstatus expects.
	var list unstructured.UnstructuredList
	if err := list.UnmarshalJSON(data); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus: reading the list:", err)
		os.Exit(2)
	}
	for i := range list.Items {
		u := &list.Items[i]
		result, err := status.Compute(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kstatus:", u.GetName(), err)
			os.Exit(1)
		}
		fmt.Printf("%s %s\n", u.GetName(), result.Status)
	}
}
