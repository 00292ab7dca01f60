package config

import (
	"fmt"
	"strings"
)

// FieldError is one problem in a configuration document, located by its
// YAML path (peers[1].addresses[0]) and line.
type FieldError struct {
	// Path is the dotted YAML path of the offending key or value; empty
	// for document-level problems such as a syntax error.
	Path string
	// Line and Column are 1-based positions in the document; zero when
	// unknown.
	Line, Column int
	Msg          string
}

func (e FieldError) Error() string {
	switch {
	case e.Path != "" && e.Line > 0:
		return fmt.Sprintf("%s (line %d): %s", e.Path, e.Line, e.Msg)
	case e.Path != "":
		return fmt.Sprintf("%s: %s", e.Path, e.Msg)
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Errors is every problem found in one document, in document order.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}
