// The product is Linux-only (KVM, Unix sockets, file modes); so are its tests.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
