# bsdinstall(8) script written by be installerconfig.
# Run it with `bsdinstall script THIS_FILE`, or save it as /etc/installerconfig on install media.
# The variables below are read by bsdinstall; the part from the #!/bin/sh line on runs
# chrooted in the installed system.
export nonInteractive="YES"
export DISTRIBUTIONS='base.txz kernel.txz'
# Root on UFS (bsdinstall scriptedpart)
export PARTITIONS='vtbd0 GPT { 512k freebsd-boot, 2g freebsd-swap, 10g freebsd-ufs /, auto freebsd-ufs /var }'

#!/bin/sh
# Post-install: runs chrooted in the new system.
set -e
sysrc hostname=vm1
sysrc sshd_enable=YES
sysrc ntpd_enable=YES
