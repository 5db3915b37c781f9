// libcnidriver: a warm libcni runtime for benchmarks, like containerd calling libcni in-process.
//
// It reads one JSON request per line on stdin and answers one JSON line per request, running
// requests concurrently (the caller bounds the concurrency). Each answer carries the wall time
// libcni took, so process start-up of the driver itself never enters the figures.
//
//	{"id":1,"op":"add"|"del","conf":"/path/x.conflist","netns":"/run/netns/p","cid":"c1","ifname":"eth0",
//	 "args":[["K8S_POD_NAME","p"]],"caps":{"portMappings":[...]}}
//	→ {"id":1,"ms":12.3,"error":""}
//
// Environment: CNI_PATH, CNI_CACHE_DIR.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
)

type request struct {
	ID     int                    `json:"id"`
	Op     string                 `json:"op"`
	Conf   string                 `json:"conf"`
	Netns  string                 `json:"netns"`
	Cid    string                 `json:"cid"`
	Ifname string                 `json:"ifname"`
	Args   [][2]string            `json:"args"`
	Caps   map[string]interface{} `json:"caps"`
}

type reply struct {
	ID    int     `json:"id"`
	Ms    float64 `json:"ms"`
	Error string  `json:"error"`
}

var (
	confs   = map[string]*libcni.NetworkConfigList{}
	confsMu sync.Mutex
	outMu   sync.Mutex
)

func load(path string) (*libcni.NetworkConfigList, error) {
	confsMu.Lock()
	defer confsMu.Unlock()
	if c, ok := confs[path]; ok {
		return c, nil
	}
	var c *libcni.NetworkConfigList
	var err error
	if strings.HasSuffix(path, ".conflist") {
		c, err = libcni.ConfListFromFile(path)
	} else {
		var one *libcni.NetworkConfig
		one, err = libcni.ConfFromFile(path)
		if err == nil {
			c, err = libcni.ConfListFromConf(one)
		}
	}
	if err == nil {
		confs[path] = c
	}
	return c, err
}

func main() {
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(os.Getenv("CNI_PATH")), os.Getenv("CNI_CACHE_DIR"), nil)
	out := json.NewEncoder(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	var wg sync.WaitGroup
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			outMu.Lock()
			_ = out.Encode(reply{ID: -1, Error: err.Error()})
			outMu.Unlock()
			continue
		}
		wg.Add(1)
		go func(req request) {
			defer wg.Done()
			rep := reply{ID: req.ID}
			list, err := load(req.Conf)
			if err == nil {
				rt := &libcni.RuntimeConf{ContainerID: req.Cid, NetNS: req.Netns, IfName: req.Ifname,
					Args: req.Args, CapabilityArgs: req.Caps}
				start := time.Now()
				switch req.Op {
				case "add":
					_, err = cni.AddNetworkList(context.Background(), list, rt)
				case "del":
					err = cni.DelNetworkList(context.Background(), list, rt)
				}
				rep.Ms = float64(time.Since(start).Microseconds()) / 1000.0
			}
			if err != nil {
				rep.Error = err.Error()
			}
			outMu.Lock()
			_ = out.Encode(rep)
			outMu.Unlock()
		}(req)
	}
	wg.Wait()
}
