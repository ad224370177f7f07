package e2e

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportsPointOneWay checks the layering of docs/architecture.md:
// protocol uses only the standard library, transport never imports the
// session code, and only transport imports the WebSocket and serial
// libraries.
func TestImportsPointOneWay(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{.ImportPath}}: {{join .Imports \" \"}}", "webrepl/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, deps, _ := strings.Cut(line, ": ")
		imports[pkg] = strings.Fields(deps)
	}
	if len(imports["webrepl/protocol"]) == 0 {
		t.Fatal("go list did not report webrepl/protocol")
	}
	for pkg, deps := range imports {
		if !strings.HasPrefix(pkg, "webrepl/") {
			continue
		}
		for _, d := range deps {
			thirdParty := strings.Contains(strings.SplitN(d, "/", 2)[0], ".")
			switch {
			case pkg == "webrepl/protocol" && (thirdParty || strings.HasPrefix(d, "webrepl/")):
				t.Errorf("protocol imports %s: it must use the standard library only", d)
			case strings.HasPrefix(pkg, "webrepl/transport") && (strings.HasPrefix(d, "webrepl/protocol") || strings.HasPrefix(d, "webrepl/bridge") || strings.HasPrefix(d, "webrepl/internal/cli")):
				t.Errorf("%s imports %s: transport sits below the session code", pkg, d)
			case (strings.HasPrefix(d, "github.com/gobwas/") || strings.HasPrefix(d, "go.bug.st/serial")) && !strings.HasPrefix(pkg, "webrepl/transport"):
				t.Errorf("%s imports %s: only transport may", pkg, d)
			case strings.HasPrefix(d, "github.com/urfave/") && pkg != "webrepl/internal/cli":
				t.Errorf("%s imports %s: only the CLI may", pkg, d)
			}
		}
	}
}
