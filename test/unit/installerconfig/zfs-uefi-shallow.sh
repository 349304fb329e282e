# bsdinstall(8) script written by be installerconfig.
# Run it with `bsdinstall script THIS_FILE`, or save it as /etc/installerconfig on install media.
# The variables below are read by bsdinstall; the part from the #!/bin/sh line on runs
# chrooted in the installed system.
export nonInteractive="YES"
export DISTRIBUTIONS='kernel.txz base.txz'
# Root on ZFS (bsdinstall zfsboot)
export ZFSBOOT_DISKS=nvd0
export ZFSBOOT_VDEV_TYPE=stripe
export ZFSBOOT_POOL_NAME=zroot
export ZFSBOOT_BEROOT_NAME=ROOT
export ZFSBOOT_BOOTFS_NAME=default
export ZFSBOOT_PARTITION_SCHEME=GPT
export ZFSBOOT_BOOT_TYPE=UEFI
export ZFSBOOT_SWAP_SIZE=8g
# No GELI: zfsboot would ask for its passphrase on the console (be refuses geli: true).
export ZFSBOOT_GELI_ENCRYPTION=''
export ZFSBOOT_FORCE_4K_SECTORS=1
# The boot environment and its children in be's 'shallow' layout.
export ZFSBOOT_DATASETS='
	/ROOT          mountpoint=none
	/ROOT/default  mountpoint=/
'

#!/bin/sh
# Post-install: runs chrooted in the new system.
set -e
# The boot environment's datasets mount only with it: older zfsboot made the BE itself
# canmount=noauto, newer every dataset under it (the canmount=off ones too). The pool is still
# imported here.
zfs set canmount=noauto zroot/ROOT/default
sysrc hostname=laptop
printf '%s\n' '$6$salt$hashhashhash' | pw usermod -n root -H 0
