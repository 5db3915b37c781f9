// golibcni: a minimal libcni-based runtime and result converter, used as the reference
// in metacni's tests. It is built from Debian's golang-github-appc-cni-dev sources.
//
//	golibcni add|del|check CONFLIST NETNS CONTAINERID IFNAME   (env CNI_PATH, CNI_CACHE_DIR, CAP_ARGS, CNI_RT_ARGS)
//	golibcni convert TARGET_VERSION < result.json
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types/create"
)

func fail(err error) {
	out, _ := json.Marshal(map[string]string{"error": err.Error()})
	fmt.Println(string(out))
	os.Exit(1)
}

func load(path string) (*libcni.NetworkConfigList, error) {
	if strings.HasSuffix(path, ".conflist") {
		return libcni.ConfListFromFile(path)
	}
	conf, err := libcni.ConfFromFile(path)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromConf(conf)
}

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: golibcni add|del|check|convert ..."))
	}
	if os.Args[1] == "convert" {
		data, err := io.ReadAll(os.Stdin)
		if err != nil {
			fail(err)
		}
		res, err := create.CreateFromBytes(data)
		if err != nil {
			fail(err)
		}
		conv, err := res.GetAsVersion(os.Args[2])
		if err != nil {
			fail(err)
		}
		out, err := json.Marshal(conv)
		if err != nil {
			fail(err)
		}
		fmt.Println(string(out))
		return
	}
	if len(os.Args) != 6 {
		fail(fmt.Errorf("usage: golibcni add|del|check CONFLIST NETNS CONTAINERID IFNAME"))
	}
	netconf, err := load(os.Args[2])
	if err != nil {
		fail(err)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	rt := &libcni.RuntimeConf{ContainerID: os.Args[4], NetNS: os.Args[3], IfName: os.Args[5]}
	// CNI_RT_ARGS "K=V;K=V": the runtime's CNI_ARGS (kubelet passes K8S_POD_NAMESPACE etc.).
	if args := os.Getenv("CNI_RT_ARGS"); args != "" {
		for _, pair := range strings.Split(args, ";") {
			if kv := strings.SplitN(pair, "=", 2); len(kv) == 2 {
				rt.Args = append(rt.Args, [2]string{kv[0], kv[1]})
			}
		}
	}
	if caps := os.Getenv("CAP_ARGS"); caps != "" {
		if err := json.Unmarshal([]byte(caps), &rt.CapabilityArgs); err != nil {
			fail(err)
		}
	}
	ctx := context.Background()
	switch os.Args[1] {
	case "add":
		res, err := cni.AddNetworkList(ctx, netconf, rt)
		if err != nil {
			fail(err)
		}
		_ = res.Print()
	case "del":
		if err := cni.DelNetworkList(ctx, netconf, rt); err != nil {
			fail(err)
		}
	case "check":
		if err := cni.CheckNetworkList(ctx, netconf, rt); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("unknown verb %s", os.Args[1]))
	}
}
