namespace P2PReplay.Linux;

/// <summary>Signal numbers (x86-64) and their names.</summary>
public static class Signals
{
    public const int SIGHUP = 1, SIGINT = 2, SIGQUIT = 3, SIGILL = 4, SIGTRAP = 5, SIGABRT = 6, SIGBUS = 7, SIGFPE = 8,
        SIGKILL = 9, SIGUSR1 = 10, SIGSEGV = 11, SIGUSR2 = 12, SIGPIPE = 13, SIGALRM = 14, SIGTERM = 15, SIGCHLD = 17,
        SIGCONT = 18, SIGSTOP = 19, SIGTSTP = 20, SIGWINCH = 28, SIGSYS = 31;

    public const int Count = 64;

    private static readonly string[] Names =
    [
        "0", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL", "SIGUSR1",
        "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP",
        "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
    ];

    private static readonly string[] Descriptions =
    [
        "", "Hangup", "Interrupt", "Quit", "Illegal instruction", "Trace/breakpoint trap", "Aborted", "Bus error",
        "Floating point exception", "Killed", "User defined signal 1", "Segmentation fault", "User defined signal 2",
        "Broken pipe", "Alarm clock", "Terminated",
    ];

    public static string Name(int signal) => signal > 0 && signal < Names.Length ? Names[signal] : $"SIGRT{signal}";

    public static string Description(int signal) => signal > 0 && signal < Descriptions.Length ? Descriptions[signal] : Name(signal);

    /// <summary>Signals whose default action ignores them (signal(7)).</summary>
    public static bool DefaultIgnored(int signal) => signal is SIGCHLD or SIGCONT or SIGWINCH or 23 /*SIGURG*/;
}

/// <summary>rt_sigaction dispositions and the blocked mask. Delivery to handlers is not implemented yet.</summary>
public sealed class SignalState
{
    public const ulong SigDefault = 0;
    public const ulong SigIgnore = 1;

    /// <summary>struct kernel_sigaction as the guest gave it: handler, flags, restorer, mask.</summary>
    public readonly record struct Action(ulong Handler, ulong Flags, ulong Restorer, ulong Mask);

    private readonly Action[] _actions = new Action[Signals.Count + 1];

    public ulong BlockedMask { get; set; }

    /// <summary>Signals raised while blocked; acted on when unblocked.</summary>
    public ulong PendingMask { get; set; }

    public static ulong Bit(int signal) => 1UL << (signal - 1);

    public Action Get(int signal) => _actions[signal];

    public void Set(int signal, Action action) => _actions[signal] = action;
}
