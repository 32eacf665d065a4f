package devkit

import "syscall"

// tie has the kernel SIGKILL the process when its creating thread exits.
func tie(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
