package cuda

import (
	"go/ast"
	"go/parser"
	"go/token"
	"testing"
)

// TestSetTuneSavesEveryChoice reads tune_test.go and holds that every
// variable applyTune sets is one SetTune's restore puts back (save(&v)): a
// choice left changed would run every later test of the process with it
// (attnCluster and attnQuant were, after TestDecodeVariantsEqual's
// "nocluster" and "noattnq", until the twenty-ninth session).
func TestSetTuneSavesEveryChoice(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "tune_test.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	funcs := map[string]*ast.FuncDecl{}
	for _, d := range f.Decls {
		if d, ok := d.(*ast.FuncDecl); ok {
			funcs[d.Name.Name] = d
		}
	}
	apply, setTune := funcs["applyTune"], funcs["SetTune"]
	if apply == nil || setTune == nil {
		t.Fatal("tune_test.go has no applyTune or SetTune")
	}
	// Package-level variables applyTune assigns: names assigned with = (its
	// own locals are declared with :=) and the targets of its "name=N"
	// map (&v).
	set, saved := map[string]bool{}, map[string]bool{}
	locals := map[string]bool{}
	ast.Inspect(apply.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.AssignStmt:
			for _, l := range n.Lhs {
				if id, ok := l.(*ast.Ident); ok {
					if n.Tok == token.DEFINE {
						locals[id.Name] = true
					} else {
						set[id.Name] = true
					}
				}
			}
		case *ast.RangeStmt:
			for _, e := range []ast.Expr{n.Key, n.Value} {
				if id, ok := e.(*ast.Ident); ok {
					locals[id.Name] = true
				}
			}
		case *ast.UnaryExpr:
			if id, ok := n.X.(*ast.Ident); ok && n.Op == token.AND {
				set[id.Name] = true
			}
		}
		return true
	})
	ast.Inspect(setTune.Body, func(n ast.Node) bool {
		if c, ok := n.(*ast.CallExpr); ok {
			if id, ok := c.Fun.(*ast.Ident); ok && id.Name == "save" && len(c.Args) == 1 {
				if u, ok := c.Args[0].(*ast.UnaryExpr); ok {
					if v, ok := u.X.(*ast.Ident); ok {
						saved[v.Name] = true
					}
				}
			}
		}
		return true
	})
	if len(set) < 10 || len(saved) < 10 {
		t.Fatalf("found %d choices set and %d saved: tune_test.go's shape changed", len(set), len(saved))
	}
	for v := range set {
		if !locals[v] && v != "_" && !saved[v] {
			t.Errorf("applyTune sets %s but SetTune's restore does not put it back (save(&%s))", v, v)
		}
	}
}
