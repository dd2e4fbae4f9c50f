module fwgoclient

go 1.19
