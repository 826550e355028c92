// Command kstatus prints the verdict of the real kstatus library
// (sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute) for Kubernetes objects, so the tests check
// nodepatch's conditions against what kpt, Config Sync and Flux read.
//
// Input: a stream of JSON objects on stdin (any whitespace between them). Output: one JSON line
// per object, {"name": ..., "status": ..., "message": ...}, in input order. An object that cannot
// be computed is an error (exit 1) naming it, never a guess.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "kstatus:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)
	for i := 0; ; i++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("object %d: invalid JSON: %w", i, err)
		}
		// Unstructured's own decoder keeps integers int64, as the apiserver's clients do
		// (encoding/json would make metadata.generation a float64 kstatus refuses).
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("object %d: not a Kubernetes object: %w", i, err)
		}
		name := fmt.Sprintf("%s/%s", u.GetKind(), u.GetName())
		res, err := status.Compute(u)
		if err != nil {
			return fmt.Errorf("object %d (%s): %w", i, name, err)
		}
		if err := enc.Encode(verdict{Name: name, Status: res.Status.String(), Message: res.Message}); err != nil {
			return err
		}
	}
}
