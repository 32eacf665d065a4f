package devkit

import "syscall"

// tie does nothing: macOS has no parent-death signal, so a killed test or
// demo can leave the process behind there.
func tie(*syscall.SysProcAttr) {}
