// cnitool: the CNI project's cnitool (containernetworking/cni/cnitool), rebuilt from Debian's
// libcni sources (golang-github-appc-cni-dev ships libcni but not cnitool) for the node test.
//
//	cnitool add|check|del NETWORK NETNS
//
// Same environment as upstream: NETCONFPATH (default /etc/cni/net.d), CNI_PATH, CNI_IFNAME
// (default eth0), CNI_ARGS, CAP_ARGS (JSON); the container ID is upstream's
// "cnitool-" + sha512(NETNS) prefix, or CNI_CONTAINERID when set. One addition: NETWORK "-"
// selects the lexically first config file, as kubelet's runtimes do, so the test sees what a
// runtime sees when 00-metacni.conf appears or goes away.
package main

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

// exit reports err on stderr; a plugin's CNI error also as "cnitool: code N: ..." so callers
// can tell "try again later" (11) from a failure.
func exit(err error) {
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		fmt.Fprintf(os.Stderr, "cnitool: code %d: %v\n", cniErr.Code, err)
	} else {
		fmt.Fprintf(os.Stderr, "cnitool: %v\n", err)
	}
	os.Exit(1)
}

func firstList(dir string) (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	for _, f := range files {
		if strings.HasSuffix(f, ".conflist") {
			if l, err := libcni.ConfListFromFile(f); err == nil {
				return l, nil
			}
			continue
		}
		if c, err := libcni.ConfFromFile(f); err == nil {
			return libcni.ConfListFromConf(c)
		}
	}
	return nil, fmt.Errorf("no network config in %s", dir)
}

func main() {
	if len(os.Args) < 4 {
		exit(fmt.Errorf("usage: cnitool add|check|del NETWORK NETNS"))
	}
	netdir := os.Getenv("NETCONFPATH")
	if netdir == "" {
		netdir = "/etc/cni/net.d"
	}
	var list *libcni.NetworkConfigList
	var err error
	if os.Args[2] == "-" {
		list, err = firstList(netdir)
	} else {
		list, err = libcni.LoadConfList(netdir, os.Args[2])
	}
	if err != nil {
		exit(err)
	}
	capArgs := map[string]interface{}{}
	if s := os.Getenv("CAP_ARGS"); s != "" {
		if err := json.Unmarshal([]byte(s), &capArgs); err != nil {
			exit(err)
		}
	}
	var cniArgs [][2]string
	if s := os.Getenv("CNI_ARGS"); s != "" {
		for _, pair := range strings.Split(s, ";") {
			kv := strings.SplitN(pair, "=", 2)
			if len(kv) != 2 {
				exit(fmt.Errorf("invalid CNI_ARGS pair %q", pair))
			}
			cniArgs = append(cniArgs, [2]string{kv[0], kv[1]})
		}
	}
	ifName := os.Getenv("CNI_IFNAME")
	if ifName == "" {
		ifName = "eth0"
	}
	netns, _ := filepath.Abs(os.Args[3])
	containerID := os.Getenv("CNI_CONTAINERID")
	if containerID == "" {
		containerID = fmt.Sprintf("cnitool-%x", sha512.Sum512([]byte(netns)))[:20]
	}
	cninet := libcni.NewCNIConfig(filepath.SplitList(os.Getenv("CNI_PATH")), nil)
	rt := &libcni.RuntimeConf{ContainerID: containerID, NetNS: netns, IfName: ifName,
		Args: cniArgs, CapabilityArgs: capArgs}
	ctx := context.TODO()
	switch os.Args[1] {
	case "add":
		result, err := cninet.AddNetworkList(ctx, list, rt)
		if result != nil {
			_ = result.Print()
		}
		if err != nil {
			exit(err)
		}
	case "check":
		if err := cninet.CheckNetworkList(ctx, list, rt); err != nil {
			exit(err)
		}
	case "del":
		if err := cninet.DelNetworkList(ctx, list, rt); err != nil {
			exit(err)
		}
	default:
		exit(fmt.Errorf("unknown command %q", os.Args[1]))
	}
}
