using System.Diagnostics;
using P2PReplay.Tests.Support;

namespace P2PReplay.Tests.Replay;

/// <summary>`run --record`, `replay` and `log inspect` through the published binary.</summary>
public sealed class ReplayCliTests
{
    [KvmFact]
    public void Record_replay_and_inspect_from_the_command_line()
    {
        string dir = GuestRunner.TempDirectory();
        string log = Path.Combine(dir, "run.p2plog");
        try
        {
            byte[] stdin = "alpha\nbeta\n"u8.ToArray();
            var run = GuestRunner.Cli(["run", "--record", log, "--env", "X=1", "--", Repo.Guest("glibc", "stdin_cat")], stdin);
            Assert.Equal(0, run.ExitCode);
            Assert.Equal("alpha\nbeta\n", run.Stdout);

            var replay = GuestRunner.Cli(["replay", log]); // no stdin: the input comes from the log
            Assert.Equal(0, replay.ExitCode);
            Assert.Equal(run.Stdout, replay.Stdout);
            Assert.Matches("replay verified: [0-9]+ exits, [0-9]+ input events, [1-9][0-9]* digests checked, [0-9]+ log bytes", replay.Stderr);

            var inspect = GuestRunner.Cli(["log", "inspect", log]);
            Assert.Equal(0, inspect.ExitCode);
            Assert.Contains("program   " + Repo.Guest("glibc", "stdin_cat"), inspect.Stdout);
            Assert.Contains("env       X=1", inspect.Stdout);
            Assert.Contains("bytes of stdin 616c706861", inspect.Stdout); // "alpha" in hex
            Assert.Contains("-- end of recording", inspect.Stdout);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [KvmFact]
    public void Replay_refuses_a_different_program()
    {
        string dir = GuestRunner.TempDirectory();
        string program = Path.Combine(dir, "prog");
        string log = Path.Combine(dir, "run.p2plog");
        try
        {
            File.Copy(Repo.Guest("musl", "hello"), program);
            Assert.Equal(0, GuestRunner.Cli(["run", "--record", log, "--", program]).ExitCode);
            File.Copy(Repo.Guest("musl", "exitcode"), program, overwrite: true);
            var replay = GuestRunner.Cli(["replay", log]);
            Assert.Equal(2, replay.ExitCode);
            Assert.Contains("is not the recorded program", replay.Stderr);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [KvmFact]
    public void A_recording_killed_mid_run_replays_to_where_it_stopped()
    {
        string dir = GuestRunner.TempDirectory();
        string log = Path.Combine(dir, "killed.p2plog");
        try
        {
            var info = new ProcessStartInfo(Repo.Binary) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (string a in new[] { "run", "--record", log, "--digest-every", "200", "--", Repo.Busybox, "sh", "-c", "i=0; while true; do i=$((i+1)); echo $i; done" })
                info.ArgumentList.Add(a);
            using (var process = Process.Start(info)!)
            {
                for (int line = 0; line < 3000; line++) process.StandardOutput.ReadLine();
                process.Kill(); // SIGKILL
                process.WaitForExit();
            }
            var replay = GuestRunner.Cli(["replay", "--quiet", log]);
            Assert.Equal(4, replay.ExitCode);
            Assert.Contains("cut off", replay.Stderr);
            Assert.Matches("verified up to exit [1-9][0-9]*", replay.Stderr);
            var inspect = GuestRunner.Cli(["log", "inspect", log]);
            Assert.Equal(0, inspect.ExitCode);
            Assert.Contains("the log is cut off", inspect.Stdout);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [KvmFact]
    public void A_corrupt_log_is_rejected_with_the_chunk_named()
    {
        string dir = GuestRunner.TempDirectory();
        string log = Path.Combine(dir, "run.p2plog");
        try
        {
            Assert.Equal(0, GuestRunner.Cli(["run", "--record", log, "--", Repo.Guest("musl", "random")]).ExitCode);
            byte[] bytes = File.ReadAllBytes(log);
            bytes[bytes.Length / 2] ^= 0x20;
            File.WriteAllBytes(log, bytes);
            var replay = GuestRunner.Cli(["replay", log]);
            Assert.Equal(2, replay.ExitCode);
            Assert.Matches("chunk [0-9]+ at byte [0-9]+", replay.Stderr);
            Assert.Equal(2, GuestRunner.Cli(["log", "inspect", log]).ExitCode);
            Assert.Equal(2, GuestRunner.Cli(["replay", Repo.Busybox]).ExitCode); // not a log at all
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
